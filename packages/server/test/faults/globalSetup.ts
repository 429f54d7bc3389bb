/**
 * Global set-up of the fault suite: starts its private stack (other ports,
 * its own state directory), and at the end prints the summary table, keeps it
 * in `last-run.md` and stops that stack.
 */
import { Effect } from "effect"
import { writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { down, up } from "./PrivateStack.js"
import { clearResults, readResults, summaryTable } from "./Report.js"

const lastRun = fileURLToPath(new URL("last-run.md", import.meta.url))

export default async function setup() {
  clearResults()
  await Effect.runPromise(up)
  const started = performance.now()
  return async () => {
    const minutes = ((performance.now() - started) / 60_000).toFixed(1)
    const table = summaryTable(readResults())
    writeFileSync(lastRun, `# Fault suite, last run (${minutes} min)\n\n${table}\n`)
    console.log(`\nFault suite summary (${minutes} min, also in ${lastRun}):\n\n${table}\n`)
    await Effect.runPromise(down)
  }
}
