/** What a bench run does, from the environment (`BENCH_*`), with defaults that keep a full run to a few minutes. */
import { Config } from "effect"

const integers = (name: string, fallback: ReadonlyArray<number>) =>
  Config.array(Config.integer(), name).pipe(
    Config.withDefault([...fallback]),
    Config.validate({
      message: "must be a comma-separated list of integers >= 0",
      validation: (list) => list.length > 0 && list.every((n) => n >= 0)
    })
  )

const positive = (name: string, fallback: number) =>
  Config.number(name).pipe(
    Config.withDefault(fallback),
    Config.validate({ message: "must be > 0", validation: (n) => n > 0 })
  )

export const FLOORS = ["http", "effect-http", "mongo", "postgres", "kafka"] as const
export type FloorName = typeof FLOORS[number]

export const Settings = Config.all({
  /** Closed-loop clients (autocannon connections) of each step. */
  concurrency: integers("BENCH_CONCURRENCY", [1, 8, 32, 128]),
  /** Measured seconds of each step, after `warmupSeconds` whose figures are dropped. */
  seconds: positive("BENCH_SECONDS", 4),
  warmupSeconds: Config.number("BENCH_WARMUP_SECONDS").pipe(Config.withDefault(1)),
  /** Seconds of mixed load (create, read, process) on a freshly started target before any step, unmeasured. */
  targetWarmupSeconds: Config.number("BENCH_TARGET_WARMUP_SECONDS").pipe(Config.withDefault(5)),
  /** Seconds of mixed load (create, read, process) between the two RSS readings; 0 skips the soak. */
  soakSeconds: Config.number("BENCH_SOAK_SECONDS").pipe(Config.withDefault(60)),
  soakConnections: Config.integer("BENCH_SOAK_CONNECTIONS").pipe(Config.withDefault(32)),
  /** Orders in the event store at each point of the scale sweep. */
  scaleOrders: integers("BENCH_SCALE_ORDERS", [0, 10_000, 50_000, 100_000]),
  scaleConcurrency: Config.integer("BENCH_SCALE_CONCURRENCY").pipe(Config.withDefault(32)),
  /** How often a create → visible client asks `GET /:id` again. */
  pollMillis: positive("BENCH_POLL_MILLIS", 5),
  /** Which floors to measure; default all for the native stack, `http` and `effect-http` for the embedded program. */
  floors: Config.option(Config.array(Config.literal(...FLOORS)(), "BENCH_FLOORS")),
  /** A server started by hand instead of one the bench starts, and its pid for the RSS readings. */
  url: Config.option(Config.string("BENCH_URL")),
  serverPid: Config.option(Config.integer("BENCH_SERVER_PID")),
  /** The processor's simulated work: short, so that processing keeps up with the load. */
  processingDelay: Config.string("PROCESSING_DELAY").pipe(Config.withDefault("1 millis")),
  /** The server's access log, on as the product ships (the test harness turns it off). */
  accessLog: Config.boolean("HTTP_ACCESS_LOG").pipe(Config.withDefault(true))
})

export type Settings = Config.Config.Success<typeof Settings>
