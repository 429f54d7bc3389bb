/**
 * How the programs run: build a Layer and keep it until SIGINT/SIGTERM, which
 * releases every client in reverse order of acquisition, or until a background
 * loop stops, which ends the program non-zero.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Config, Effect, Layer, Logger, LogLevel, Option } from "effect"
import { StartupError } from "./Startup.js"
import { Workers, WorkerStopped } from "./Workers.js"

/** `LOG_FORMAT`: `logfmt` (default) or `json`, one record per line either way; `LOG_LEVEL`: default `Info`. */
const logging = Effect.gen(function*() {
  const format = yield* Config.literal("logfmt", "json")("LOG_FORMAT").pipe(Config.withDefault("logfmt"))
  const level = yield* Config.logLevel("LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info))
  return Layer.merge(format === "json" ? Logger.json : Logger.logFmt, Logger.minimumLogLevel(level))
}).pipe(Effect.tapError((error) => Effect.logError(`invalid logging configuration: ${error.message}`)))

const startupFailure = <E>(cause: Cause.Cause<E>) =>
  Cause.failureOption(cause).pipe(Option.filter((error): error is E & StartupError => error instanceof StartupError))

/** An unreachable server at start-up is one line; a stopped loop was logged where it stopped; anything else the whole cause. */
const report = <E>(cause: Cause.Cause<E>) =>
  Option.match(startupFailure(cause), {
    onSome: (error) => Effect.logError(error.message),
    onNone: () =>
      Cause.isInterruptedOnly(cause) ||
        Option.exists(Cause.failureOption(cause), (error) => error instanceof WorkerStopped)
        ? Effect.void
        : Effect.logError("program failed", cause)
  })

/** Builds `program` and keeps it until interrupted, or until one of its background loops stops. */
export const launch = <E>(program: Layer.Layer<never, E, Workers>): Effect.Effect<never, E | WorkerStopped> =>
  Effect.gen(function*() {
    const workers = yield* Workers
    yield* Layer.build(program)
    return yield* workers.awaitStopped
  }).pipe(Effect.scoped, Effect.provide(Workers.Default))

/** Runs the program until a signal stops it; a failure is logged and exits non-zero. */
export const runProgram = <E>(program: Layer.Layer<never, E, Workers>): void =>
  logging.pipe(
    Effect.flatMap((loggers) => launch(program).pipe(Effect.tapErrorCause(report), Effect.provide(loggers))),
    NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
  )
