/**
 * Starts the programs as a user would, as separate OS processes, and talks to
 * them over HTTP.
 */
import { expect } from "@effect/vitest"
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
        env: { ...process.env, HTTP_ACCESS_LOG: "false", ...env },
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

/** A response's status and its body, parsed when it is JSON. */
const answer = (response: Response) =>
  Effect.promise(async () => {
    const text = await response.text()
    return { status: response.status, body: text === "" ? undefined : JSON.parse(text) as unknown }
  })

/** The original service's five calls, as its README gives them with curl, and what each answered. */
export const originalFiveCalls = (baseUrl: string, id: string) =>
  Effect.gen(function*() {
    const create = yield* Effect.promise(() =>
      fetch(`${baseUrl}/`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ id, name: "somename", status: "new" })
      })
    ).pipe(Effect.flatMap(answer))
    const process = yield* Effect.promise(() =>
      fetch(`${baseUrl}/${id}`, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: ""
      })
    ).pipe(Effect.flatMap(answer))
    const list = yield* Effect.promise(() => fetch(`${baseUrl}/`)).pipe(Effect.flatMap(answer))
    const processed = yield* waitFor(orderOf(baseUrl, id), (order) => order?.status === "processed")
    return { create, process, list, processed }
  })

/**
 * Checks the five calls' answers: created new, accepted as processing, listed in
 * one of the states the order really went through (the list reads the read
 * model, which may lag), and processed at last.
 */
export const expectOriginalFiveCalls = (
  id: string,
  calls: Effect.Effect.Success<ReturnType<typeof originalFiveCalls>>
) => {
  const at = (status: string, version: number) => ({ id, name: "somename", status, version })
  expect(calls.create).toEqual({ status: 201, body: at("new", 1) })
  expect(calls.process).toEqual({ status: 202, body: at("processing", 2) })
  expect(calls.list.status).toBe(200)
  expect(calls.list.body).toHaveLength(1)
  expect([at("new", 1), at("processing", 2), at("processed", 3)]).toContainEqual((calls.list.body as Array<unknown>)[0])
  expect(calls.processed).toEqual(at("processed", 3))
}
