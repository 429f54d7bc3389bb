/**
 * How the programs run: launch a Layer until SIGINT/SIGTERM, which releases
 * every client in reverse order of acquisition.
 */
import { NodeRuntime } from "@effect/platform-node"
import type { Layer } from "effect"
import { Cause, Effect, Layer as L, Option } from "effect"
import { StartupError } from "./Startup.js"

const startupFailure = <E>(cause: Cause.Cause<E>) =>
  Cause.failureOption(cause).pipe(Option.filter((error): error is E & StartupError => error instanceof StartupError))

/** Runs the program; an unreachable server at start-up is reported on one line, with a non-zero exit. */
export const runProgram = <E>(program: Layer.Layer<never, E>): void =>
  L.launch(program).pipe(
    Effect.tapErrorCause((cause) =>
      Option.match(startupFailure(cause), {
        onSome: (error) => Effect.logError(error.message),
        onNone: () => Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError("program failed", cause)
      })
    ),
    // One line per log record, for log collectors.
    NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
  )
