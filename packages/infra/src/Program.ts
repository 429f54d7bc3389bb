/**
 * How the programs run: launch a Layer until SIGINT/SIGTERM, which releases
 * every client in reverse order of acquisition.
 */
import { NodeRuntime } from "@effect/platform-node"
import type { Layer } from "effect"
import { Cause, Config, Effect, Layer as L, Logger, LogLevel, Option } from "effect"
import { StartupError } from "./Startup.js"

/** `LOG_FORMAT`: `logfmt` (default) or `json`, one record per line either way; `LOG_LEVEL`: default `Info`. */
const logging = Effect.gen(function*() {
  const format = yield* Config.literal("logfmt", "json")("LOG_FORMAT").pipe(Config.withDefault("logfmt"))
  const level = yield* Config.logLevel("LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info))
  return L.merge(format === "json" ? Logger.json : Logger.logFmt, Logger.minimumLogLevel(level))
}).pipe(Effect.tapError((error) => Effect.logError(`invalid logging configuration: ${error.message}`)))

const startupFailure = <E>(cause: Cause.Cause<E>) =>
  Cause.failureOption(cause).pipe(Option.filter((error): error is E & StartupError => error instanceof StartupError))

/** An unreachable server at start-up is one line; anything else the whole cause. */
const report = <E>(cause: Cause.Cause<E>) =>
  Option.match(startupFailure(cause), {
    onSome: (error) => Effect.logError(error.message),
    onNone: () => Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError("program failed", cause)
  })

/** Runs the program until a signal stops it; a failure is logged and exits non-zero. */
export const runProgram = <E>(program: Layer.Layer<never, E>): void =>
  logging.pipe(
    Effect.flatMap((loggers) => L.launch(program).pipe(Effect.tapErrorCause(report), Effect.provide(loggers))),
    NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
  )
