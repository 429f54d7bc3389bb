/**
 * How the programs run: build a Layer and keep it until SIGINT/SIGTERM, which
 * releases every client in reverse order of acquisition, or until a background
 * loop stops, which ends the program non-zero. And how one-shot commands run:
 * to their end, with the exit code they choose.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Config, Duration, Effect, Exit, Layer, Logger, LogLevel, Option, Ref } from "effect"
import { Health, makeHealth } from "./Health.js"
import { StartupError } from "./Startup.js"
import { tracingConfig, withTraceIds } from "./Telemetry.js"
import { Workers, WorkerStopped } from "./Workers.js"

/** How long log records gather before they are written together. */
const logWindow = Duration.millis(20)

/**
 * `LOG_FORMAT`: `logfmt` (default) or `json`, one record per line either way; `LOG_LEVEL`: default `Info`.
 * To stdout, or to stderr for a command whose stdout is its answer. A record
 * written inside a traced span carries its `traceId` and `spanId`.
 */

const logging = (to: "stdout" | "stderr") =>
  Effect.gen(function*() {
    const format = yield* Config.literal("logfmt", "json")("LOG_FORMAT").pipe(Config.withDefault("logfmt"))
    const level = yield* Config.logLevel("LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info))
    const formatted = withTraceIds(format === "json" ? Logger.jsonLogger : Logger.logfmtLogger)
    const stream = to === "stdout" ? process.stdout : process.stderr
    // One write per window rather than one per record (each a system call, with the access log on one per
    // request); what is still gathered is written when the program ends, and lost only to a SIGKILL.
    const logger = Logger.batched(
      formatted,
      logWindow,
      (records) => Effect.sync(() => stream.write(`${records.join("\n")}\n`))
    )
    return Layer.merge(Logger.replaceScoped(Logger.defaultLogger, logger), Logger.minimumLogLevel(level))
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

/**
 * Builds `program` and keeps it until interrupted, or until one of its
 * background loops stops. The program has health checks of its own, and is
 * not ready until it is built.
 */
export const launch = <E>(program: Layer.Layer<never, E, Workers>): Effect.Effect<never, E | WorkerStopped> =>
  Effect.gen(function*() {
    const workers = yield* Workers
    const health = yield* Health
    const built = yield* Ref.make(false)
    yield* health.register("started", Effect.filterOrFail(Ref.get(built), (done) => done, () => "starting"))
    yield* Layer.build(program)
    yield* Ref.set(built, true)
    return yield* workers.awaitStopped
  }).pipe(Effect.scoped, Effect.provide(Workers.Default), Effect.provideServiceEffect(Health, Effect.sync(makeHealth)))

/**
 * Runs the program until a signal stops it; a failure is logged and exits
 * non-zero. It exports traces as the `OTEL_*` variables say, as `serviceName`
 * unless `OTEL_SERVICE_NAME` names it otherwise.
 */
export const runProgram = <E>(serviceName: string, program: Layer.Layer<never, E, Workers>): void =>
  logging("stdout").pipe(
    Effect.flatMap((loggers) =>
      launch(program.pipe(Layer.provide(tracingConfig(serviceName)))).pipe(
        Effect.tapErrorCause(report),
        Effect.provide(loggers)
      )
    ),
    NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
  )

/** A command that could not do its work (an unreachable server, invalid arguments) exits with this code. */
export const commandFailed = 2
/** A command stopped by SIGINT or SIGTERM exits as a shell reports a SIGINT. */
export const commandInterrupted = 130

/**
 * Runs a one-shot command to its end and exits with the code it returns (0
 * unless it says otherwise). Its logs go to stderr, so that what it prints on
 * stdout stays its answer. A failure is logged and exits `commandFailed`; a
 * signal interrupts it, releasing its clients, and exits `commandInterrupted`.
 */
export const runCommand = <E>(command: Effect.Effect<number, E>): void =>
  logging("stderr").pipe(
    Effect.flatMap((loggers) =>
      command.pipe(
        Effect.tapErrorCause(report),
        Effect.provide(loggers),
        // A command exports no traces: its spans would cost time and put ids nobody can look up in its logs.
        Effect.withTracerEnabled(false)
      )
    ),
    NodeRuntime.runMain({
      disableErrorReporting: true,
      disablePrettyLogger: true,
      // The teardown is typed for any program: the command's success is its exit code.
      teardown: (exit, onExit) =>
        onExit(
          Exit.isSuccess(exit)
            ? Number(exit.value)
            : Cause.isInterruptedOnly(exit.cause)
            ? commandInterrupted
            : commandFailed
        )
    })
  )
