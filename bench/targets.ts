/**
 * What the bench loads: the embedded program, the two programs of the native
 * stack on fresh stores, or a server started by hand (`BENCH_URL`). Whatever
 * the bench starts, it stops when the scope closes, also on Ctrl-C or a failure.
 */
import { COMMITS } from "@orders/infra/EventStoreMongo"
import { freePort } from "@orders/infra/testing/network"
import { freshStack, mongoUriFor, withMongo } from "@orders/infra/testing/stack"
import type { RunningProgram } from "@orders/server/testing/programs"
import { startProgram, waitForOutput } from "@orders/server/testing/programs"
import { Duration, Effect, Option } from "effect"
import type { Settings } from "./settings.js"

export type TargetKind = "embedded" | "native" | "url"

export interface Target {
  readonly kind: TargetKind
  readonly url: string
  /** The process whose RSS the soak reads: the bench's own server, or `BENCH_SERVER_PID`. */
  readonly serverPid: Option.Option<number>
  /** The native server's event store, which the scale sweep fills directly. */
  readonly eventStore: Option.Option<{ readonly uri: string; readonly database: string }>
}

/**
 * `packages/<entry>` as an OS process for the scope: SIGTERM at the end, and
 * SIGKILL if it has not exited within 10 seconds, so that the bench never
 * hangs on a program that ignores the signal.
 */
export const startBenchProgram = (entry: string, env: Record<string, string>) =>
  Effect.gen(function*() {
    const program = yield* startProgram(entry, env)
    // Added after startProgram's own finalizer, so it runs first.
    yield* Effect.addFinalizer(() =>
      program.stop.pipe(Effect.timeout(Duration.seconds(10)), Effect.catchAll(() => program.kill))
    )
    return program
  })

/** Waits for `line` from the program; a failure says how the program ended, when it did. */
export const ready = (program: RunningProgram, line: string) =>
  waitForOutput(program, line).pipe(
    Effect.catchAllDefect((defect) => {
      const { exitCode, signalCode } = program.process
      const ended = exitCode === null && signalCode === null ? "still running" : `exited (${exitCode ?? signalCode})`
      return Effect.dieMessage(`${program.process.spawnargs.at(-1)} ${ended}: ${String(defect)}`)
    })
  )

const localUrl = (port: number) => `http://127.0.0.1:${port}`

/** What the bench sets in every program it starts. */
const programSettings = (settings: Settings) => ({
  PROCESSING_DELAY: settings.processingDelay,
  HTTP_ACCESS_LOG: String(settings.accessLog)
})

const embedded = (settings: Settings) =>
  Effect.gen(function*() {
    const port = yield* Effect.promise(freePort)
    const server = yield* startBenchProgram("server/src/bin/embedded.ts", {
      ...programSettings(settings),
      PORT: String(port)
    })
    yield* ready(server, "Listening on")
    return {
      kind: "embedded",
      url: localUrl(port),
      serverPid: Option.fromNullable(server.process.pid),
      eventStore: Option.none()
    } satisfies Target
  })

/**
 * Until FerretDB answers a lookup in `database` promptly again, for at most two
 * minutes: it goes on with the queries a stopped program left behind, and
 * dropping a database under a running query crashed FerretDB 1.24 (SIGBUS in
 * SQLite's WAL, seen once after a scale sweep).
 */
const quiet = (database: string) =>
  withMongo((client) => client.db(database).collection<{ _id: string }>(COMMITS).findOne({ _id: "quiet-probe" })).pipe(
    Effect.timed,
    Effect.repeat({ until: ([took]) => Duration.lessThan(took, Duration.millis(500)) }),
    Effect.timeout(Duration.minutes(2)),
    // Also when the server is gone: the drop that follows reports what it finds.
    Effect.catchAllCause(() => Effect.void)
  )

/** `server.ts` and `processor.ts` on a fresh Mongo database, PostgreSQL schema and Kafka topic, dropped at the end. */
const native = (settings: Settings) =>
  Effect.gen(function*() {
    const stack = yield* freshStack
    // Released after the programs stop, before the stores are dropped.
    yield* Effect.addFinalizer(() => quiet(stack.database))
    const env = { ...stack.env, ...programSettings(settings) }
    const port = yield* Effect.promise(freePort)
    const server = yield* startBenchProgram("server/src/bin/server.ts", { ...env, PORT: String(port) })
    yield* ready(yield* startBenchProgram("processor/src/bin/processor.ts", env), "processor consuming")
    yield* ready(server, "Listening on")
    yield* ready(server, "projector consuming")
    return {
      kind: "native",
      url: localUrl(port),
      serverPid: Option.fromNullable(server.process.pid),
      eventStore: Option.some({ uri: mongoUriFor(stack.database), database: stack.database })
    } satisfies Target
  })

/** The target of this run, for the scope: `BENCH_URL` wins over the kind the command line asked for. */
export const startTarget = (
  kind: Exclude<TargetKind, "url">,
  settings: Settings
) =>
  Option.match(settings.url, {
    onSome: (url): Effect.Effect<Target> =>
      Effect.succeed({
        kind: "url",
        url: url.replace(/\/$/, ""),
        serverPid: settings.serverPid,
        eventStore: Option.none()
      }),
    onNone: () => kind === "native" ? native(settings) : embedded(settings)
  })
