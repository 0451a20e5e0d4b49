// Counts what a page leaves open: timers pending, window/document listeners, BroadcastChannels,
// IndexedDB connections. Installed before the code it watches runs; read by the bench (1000
// create → shutdown cycles) and by test/browser/lifecycle.test.ts.

export interface OpenHandles {
  timers: number;
  listeners: number;
  channels: number;
  databases: number;
}

/** Wraps the page's globals (once) and returns a reader of what is open now. */
export function watchOpenHandles(): () => OpenHandles {
  const g = globalThis as typeof globalThis & { __openHandles?: () => OpenHandles };
  if (g.__openHandles) return g.__openHandles;
  const timers = new Set<number>();
  let listeners = 0;
  let channels = 0;
  let databases = 0;

  const { setTimeout: set, clearTimeout: clear } = globalThis;
  globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const id = set(() => (timers.delete(id), fn(...args)), ms) as unknown as number;
    timers.add(id);
    return id;
  }) as typeof setTimeout;
  globalThis.clearTimeout = ((id: number) => (timers.delete(id), clear(id))) as typeof clearTimeout;

  const ids = new WeakMap<object, number>();
  let next = 0;
  const idOf = (fn: unknown) => (typeof fn === 'object' || typeof fn === 'function') && fn !== null ? (ids.get(fn) ?? (ids.set(fn, ++next), next)) : 0;
  for (const target of [window, document] as EventTarget[]) {
    const add = target.addEventListener.bind(target);
    const remove = target.removeEventListener.bind(target);
    const seen = new Set<string>();
    target.addEventListener = (type: string, fn: EventListenerOrEventListenerObject | null, o?: boolean | AddEventListenerOptions) => {
      const key = `${type} ${idOf(fn)}`;
      if (!seen.has(key)) (seen.add(key), listeners++);
      add(type, fn, o);
    };
    target.removeEventListener = (type: string, fn: EventListenerOrEventListenerObject | null, o?: boolean | EventListenerOptions) => {
      if (seen.delete(`${type} ${idOf(fn)}`)) listeners--;
      remove(type, fn, o);
    };
  }

  const Channel = globalThis.BroadcastChannel;
  globalThis.BroadcastChannel = class extends Channel {
    #open = true;
    constructor(name: string) {
      super(name);
      channels++;
    }
    override close() {
      if (this.#open) (channels--, (this.#open = false));
      super.close();
    }
  };

  const open = IDBFactory.prototype.open;
  IDBFactory.prototype.open = function (this: IDBFactory, ...args: Parameters<IDBFactory['open']>) {
    const request = open.apply(this, args);
    request.addEventListener('success', () => {
      databases++;
      const db = request.result;
      const close = db.close.bind(db);
      let closed = false;
      db.close = () => (closed ? undefined : ((closed = true), databases--), close());
    });
    return request;
  };

  g.__openHandles = () => ({ timers: timers.size, listeners, channels, databases });
  return g.__openHandles;
}
