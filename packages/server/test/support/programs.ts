/**
 * Starts the programs as a user would, as separate OS processes, and talks to
 * them over HTTP.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { once } from "node:events"
import { fileURLToPath } from "node:url"

export { freePort } from "../../../infra/test/support/network.js"

const root = fileURLToPath(new URL("../../../../", import.meta.url))

export interface RunningProgram {
  readonly process: ChildProcess
  /** Everything the program printed so far: shown when a test fails. */
  readonly output: () => string
  /** Sends SIGTERM and resolves with the exit code. */
  readonly stop: () => Promise<number | null>
}

/** Spawns `packages/<entry>` with tsx, with the given environment on top of this one. */
export const startProgram = (entry: string, env: Record<string, string>): RunningProgram => {
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
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM")
      return exited
    }
  }
}

/** Polls `check` until it returns a value, at most `timeoutMs`; the last error explains a timeout. */
export const eventually = async <A>(check: () => Promise<A | undefined>, timeoutMs: number, what: string) => {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (Date.now() < deadline) {
    try {
      const value = await check()
      if (value !== undefined) return value
    } catch (error) {
      lastError = error
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`)
}

/** The original service's five calls, as its README gives them with curl, and what each must answer. */
export const originalFiveCalls = async (baseUrl: string, id: string) => {
  const create = await fetch(`${baseUrl}/`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ id, name: "somename", status: "new" })
  })
  const process = await fetch(`${baseUrl}/${id}`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: ""
  })
  const list = await fetch(`${baseUrl}/`)
  const processed = await eventually(
    async () => {
      const response = await fetch(`${baseUrl}/${id}`)
      const body = await response.json() as { readonly status?: string }
      return response.status === 200 && body.status === "processed" ? body : undefined
    },
    30_000,
    `order ${id} to be processed`
  )
  return { create, process, list, processed }
}
