/**
 * The suite's summary: each scenario leaves its figures in the private
 * stack's state directory (the test files run in separate workers), and the
 * global teardown prints them as one table and keeps it in `last-run.md`.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { stateDir } from "./PrivateStack.js"

export interface ScenarioResult {
  readonly number: number
  readonly scenario: string
  readonly sent: number
  readonly accepted: number
  readonly refused: number
  readonly unavailable: number
  /** Requests without an answer: the server was killed, or the client hung up. */
  readonly unanswered: number
  readonly events: number
  readonly rows: number
  readonly lost: number
  readonly duplicated: number
  readonly stuck: number
  /** Seconds from the end of the fault until the stores agreed; undefined when they did not. */
  readonly recoverySeconds: number | undefined
  readonly notes: ReadonlyArray<string>
}

const resultsDir = `${stateDir}/fault-results`

export const clearResults = () => rmSync(resultsDir, { recursive: true, force: true })

export const recordResult = (result: ScenarioResult) => {
  mkdirSync(resultsDir, { recursive: true })
  writeFileSync(`${resultsDir}/${String(result.number).padStart(2, "0")}.json`, JSON.stringify(result))
}

export const readResults = (): ReadonlyArray<ScenarioResult> => {
  let files: Array<string>
  try {
    files = readdirSync(resultsDir).sort()
  } catch {
    return []
  }
  return files.map((file) => JSON.parse(readFileSync(`${resultsDir}/${file}`, "utf8")) as ScenarioResult)
}

const headers = [
  "scenario",
  "sent",
  "2xx",
  "4xx",
  "503",
  "no answer",
  "events",
  "rows",
  "lost",
  "dup.",
  "stuck",
  "recovery",
  "notes"
]

export const summaryTable = (results: ReadonlyArray<ScenarioResult>) =>
  [
    `| ${headers.join(" | ")} |`,
    `|${headers.map(() => "---").join("|")}|`,
    ...results.map((result) =>
      `| ${
        [
          `${result.number}. ${result.scenario}`,
          result.sent,
          result.accepted,
          result.refused,
          result.unavailable,
          result.unanswered,
          result.events,
          result.rows,
          result.lost,
          result.duplicated,
          result.stuck,
          result.recoverySeconds === undefined ? "not recovered" : `${result.recoverySeconds.toFixed(1)} s`,
          result.notes.join("; ")
        ].join(" | ")
      } |`
    )
  ].join("\n")
