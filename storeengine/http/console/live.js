// Live updates: one EventSource on the store's change feed (API.md 10), with a visible state.
export class Live {
  constructor(indicator) {
    this.indicator = indicator;
    this.source = null;
    this.retry = null;
    this.set(false, "not watching");
  }

  set(on, text) {
    this.indicator.textContent = on ? "● live" : `○ ${text}`;
    this.indicator.className = on ? "live on" : "live off";
  }

  // `since` is the list's X-Change-Cursor: nothing written after the list was read is missed.
  follow(store, since, onChange) {
    this.stop();
    if (!since) {
      this.set(false, "offline (no change feed)");
      return;
    }
    this.store = store;
    this.since = since;
    this.onChange = onChange;
    this.open();
  }

  open() {
    const url = `/api/v1/${encodeURIComponent(this.store)}/_changes?since=${encodeURIComponent(this.since)}`;
    const source = new EventSource(url, { withCredentials: true });
    this.source = source;
    source.onopen = () => this.set(true);
    source.addEventListener("change", (event) => {
      if (event.lastEventId) this.since = event.lastEventId;
      this.onChange(JSON.parse(event.data));
    });
    source.onerror = () => {
      this.set(false, "offline");
      // The browser retries by itself (sending Last-Event-ID) unless the answer was final.
      if (source.readyState === EventSource.CLOSED && this.source === source) {
        this.retry = setTimeout(() => this.open(), 5000);
      }
    };
  }

  // Only a list follows the feed: elsewhere the indicator says so instead of "offline".
  stop() {
    clearTimeout(this.retry);
    if (this.source) this.source.close();
    this.source = null;
    this.set(false, "not watching");
  }
}
