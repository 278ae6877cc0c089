from storeengine.cli import main

raise SystemExit(main())
