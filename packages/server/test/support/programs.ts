/**
 * Starts the programs as a user would, as separate OS processes, and talks to
 * them over HTTP.
 */
import { waitFor } from "@orders/domain/testing/fixtures"
import { Duration, Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { once } from "node:events"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../../../../", import.meta.url))

export interface RunningProgram {
  readonly process: ChildProcess
  /** Everything the program printed so far: shown when a test fails. */
  readonly output: () => string
  /** Sends SIGTERM (unless it exited already) and waits for the exit code. */
  readonly stop: Effect.Effect<number | null>
  /** Kills it outright (SIGKILL), as a crash or an OOM killer would. */
  readonly kill: Effect.Effect<void>
}

/**
 * Spawns `packages/<entry>` with tsx, with the given environment on top of
 * this one, for the Scope: stopped with SIGTERM at the end unless it stopped before.
 */
export const startProgram = (entry: string, env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync((): RunningProgram => {
      const child = spawn(process.execPath, ["--import", "tsx", `packages/${entry}`], {
        cwd: root,
        // Any free port for a processor's metrics and health listener: tests run several at once.
        env: { ...process.env, HTTP_ACCESS_LOG: "false", METRICS_PORT: "0", ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      child.stdout.on("data", (chunk) => (output += chunk))
      child.stderr.on("data", (chunk) => (output += chunk))
      const exited = once(child, "exit").then(([code]) => code as number | null)
      return {
        process: child,
        output: () => output,
        stop: Effect.promise(() => {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
          return exited
        }),
        kill: Effect.promise(() => {
          child.kill("SIGKILL")
          return exited
        }).pipe(Effect.asVoid)
      }
    }),
    (running) => running.stop
  )

/** Waits until the program printed `line`; fails with its output if it exited or took over a minute. */
export const waitForOutput = (running: RunningProgram, line: string) =>
  waitFor(
    Effect.sync(() => running.output().includes(line) || running.process.exitCode !== null),
    (settled) => settled,
    Duration.minutes(1)
  ).pipe(
    Effect.filterOrFail(
      () => running.output().includes(line),
      () => new Error(`"${line}" not in the output of the program:\n${running.output()}`)
    ),
    Effect.orDie
  )

/** An order as the API shows it, or undefined while it is unknown or the server does not answer. */
export const orderOf = (baseUrl: string, id: string) =>
  Effect.promise(() =>
    fetch(`${baseUrl}/${id}`).then(
      async (response) =>
        response.status === 200 ? (await response.json()) as { status: string; version: number } : undefined,
      () => undefined
    )
  )
