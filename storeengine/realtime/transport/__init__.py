"""Transport: Engine.IO v4 and v3 (socket.io-client 2.x), the heartbeat, bounded send queues
and batched fan-out. Knows no entities, stores or users: imports only python-socketio,
python-engineio and `core`.
"""
