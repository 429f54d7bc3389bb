/**
 * What a run leaves: the tables it prints, each figure beside its floor, and
 * the JSON file in bench/results/ with the machine, the versions, the settings
 * and every figure.
 */
import { Effect, Option } from "effect"
import { execFileSync } from "node:child_process"
import { mkdir, readFile, writeFile } from "node:fs/promises"
import os from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import type { FloorReport } from "./floors.js"
import type { Measurement } from "./load.js"
import { failureSummary } from "./load.js"
import type { ScaleReport } from "./scale.js"
import type { ScenarioName } from "./scenarios.js"
import { scenarioLabels } from "./scenarios.js"
import type { FloorName, Settings } from "./settings.js"
import type { SoakReport } from "./soak.js"
import type { TargetKind } from "./targets.js"

const root = fileURLToPath(new URL("..", import.meta.url))

export interface ScenarioStep {
  readonly scenario: ScenarioName
  readonly concurrency: number
  readonly measurement: Measurement
  /** How long the system took to catch up after the step, before the next one started. */
  readonly settleSeconds: number
  readonly floor?: FloorComparison
}

export interface FloorComparison {
  readonly label: string
  readonly value: number
  /** Throughput: the figure ÷ its floor (1 is the floor's speed). Latency: the figure ÷ its floor (1 is as fast). */
  readonly ratio: number
  readonly unit: "per second" | "ms"
}

/** The settings as run, Options made plain for the JSON. */
export type ReportSettings = Omit<Settings, "floors" | "url" | "serverPid"> & {
  readonly floors: ReadonlyArray<FloorName>
  readonly url: string | null
  readonly serverPid: number | null
  readonly scaleOnly: boolean
}

/** What a run measured, as far as it got. */
export interface Results {
  floors: ReadonlyArray<FloorReport>
  target?: { readonly kind: TargetKind; readonly url: string }
  /** The server's RSS (MB) once started. */
  rssAtStart?: number | undefined
  readonly scenarios: Array<ScenarioStep>
  soak?: SoakReport
  scale?: ScaleReport
}

export interface Report extends Results {
  readonly startedAt: string
  readonly seconds: number
  /** A run stopped by Ctrl-C or a failure reports what it measured before. */
  readonly ending: "complete" | "interrupted" | "failed"
  readonly settings: ReportSettings
  readonly machine: ReturnType<typeof machine>
  readonly loadAverageAfter: ReadonlyArray<number>
  readonly versions: Effect.Effect.Success<typeof versions>
}

export const machine = () => {
  const cpus = os.cpus()
  return {
    cpu: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30 * 10) / 10,
    os: `${os.type()} ${os.release()}`,
    /** 1, 5 and 15 minutes, at the start: the bench shares the machine with whatever else runs. */
    loadAverage: os.loadavg()
  }
}

/** The installed version of each package the figures depend on, as each workspace package resolves it. */
const packages: ReadonlyArray<readonly [string, string]> = [
  [".", "autocannon"],
  [".", "tsx"],
  ["packages/domain", "effect"],
  ["packages/server", "@effect/platform"],
  ["packages/server", "@effect/platform-node"],
  ["packages/infra", "mongodb"],
  ["packages/infra", "@effect/sql-pg"],
  ["packages/infra", "pg"],
  ["packages/infra", "@platformatic/kafka"]
]

const git = (...args: Array<string>) =>
  Effect.try(() => execFileSync("git", args, { cwd: root, encoding: "utf8" }).trim()).pipe(Effect.option)

export const versions = Effect.gen(function*() {
  const installed = yield* Effect.forEach(
    packages,
    ([from, name]) =>
      Effect.tryPromise(() => readFile(join(root, from, "node_modules", name, "package.json"), "utf8")).pipe(
        Effect.map((text) => [name, (JSON.parse(text) as { version: string }).version] as const),
        Effect.orElseSucceed(() => [name, "not installed"] as const)
      )
  )
  const commit = yield* git("rev-parse", "HEAD")
  const changes = yield* git("status", "--porcelain")
  return {
    node: process.version,
    packages: Object.fromEntries(installed),
    commit: Option.getOrElse(commit, () => "unknown"),
    /** Files changed since the commit: the figures are of the working tree. */
    uncommittedFiles: Option.match(changes, {
      onNone: () => 0,
      onSome: (lines) => lines === "" ? 0 : lines.split("\n").length
    })
  }
})

/**
 * The floor of a scenario: a command is at least one insert into the event
 * store, a read at least one answer of the HTTP framework (one bare HTTP
 * answer when that floor was not measured), and an order becomes visible
 * no sooner than its event crossed Kafka and was upserted in the read model
 * (or, in memory, than two bare HTTP answers: the create and the read).
 */
export const floorOf = (
  scenario: ScenarioName,
  concurrency: number,
  measurement: Measurement,
  floors: ReadonlyArray<FloorReport>
): Option.Option<FloorComparison> => {
  const at = (name: FloorName) =>
    Option.fromNullable(
      floors.find((floor) => floor.name === name)?.steps.find((step) => step.concurrency === concurrency)?.measurement
    )
  const throughput = (name: FloorName, label: string) =>
    Option.map(at(name), (floor) => ({
      label: `${label} ${floor.perSecond.toFixed(0)}/s`,
      value: floor.perSecond,
      ratio: measurement.perSecond / floor.perSecond,
      unit: "per second" as const
    }))
  const latency = (label: string, value: number) => ({
    label: `${label} ${value.toFixed(1)} ms`,
    value,
    ratio: measurement.p50 / value,
    unit: "ms" as const
  })
  switch (scenario) {
    case "create":
    case "process":
      return Option.orElse(throughput("mongo", "insertOne"), () => throughput("http", "bare http"))
    case "get":
    case "list":
      return Option.orElse(throughput("effect-http", "bare HttpApi"), () => throughput("http", "bare http"))
    case "visible":
      return Option.orElse(
        Option.zipWith(
          at("kafka"),
          at("postgres"),
          (kafka, upsert) => latency("kafka+upsert p50", kafka.p50 + upsert.p50)
        ),
        () => Option.map(at("http"), (http) => latency("2 × bare http p50", 2 * http.p50))
      )
  }
}

const number = (value: number, digits = 0) =>
  Number.isNaN(value)
    ? "-"
    : value.toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: digits })

const milliseconds = (value: number) => number(value, value < 1 ? 2 : 1)

const row = (cells: ReadonlyArray<readonly [string, number]>) =>
  cells.map(([text, width]) => width < 0 ? text.padEnd(-width) : text.padStart(width)).join(" ")

const measurementCells = (m: Measurement) =>
  [[number(m.perSecond), 9], [milliseconds(m.p50), 8], [milliseconds(m.p99), 8], [number(m.failed), 7]] as const

/** The failures and the note of a row, after it. */
const remarks = (m: Measurement) => {
  const said = [...(m.failed > 0 ? [failureSummary(m)] : []), ...(m.note === undefined ? [] : [m.note])]
  return said.length === 0 ? "" : `  (${said.join("; ")})`
}

const ratio = (value: number) =>
  `${value >= 10 ? value.toFixed(0) : value >= 0.1 ? value.toFixed(2) : value.toPrecision(2)}×`

export const printReport = (report: Report) => {
  const lines: Array<string> = []
  const { machine: m, settings: s } = report
  lines.push(
    "",
    ...(report.ending === "complete" ? [] : [`THE RUN ${report.ending.toUpperCase()}: what it measured before`]),
    `target ${report.target === undefined ? "not started" : `${report.target.kind} ${report.target.url}`}; ` +
      `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB; ` +
      `load average ${m.loadAverage.map((n) => n.toFixed(2)).join(" ")} at the start`,
    `node ${report.versions.node}, commit ${report.versions.commit.slice(0, 10)}` +
      (report.versions.uncommittedFiles > 0 ? ` + ${report.versions.uncommittedFiles} changed files` : "") +
      `; ${s.warmupSeconds} s warm-up + ${s.seconds} s per step; access log ${s.accessLog ? "on" : "off"}; ` +
      `run took ${number(report.seconds)} s`
  )
  if (report.floors.length > 0) {
    lines.push("", row([["floor", -50], ["conc", 5], ["ops/s", 9], ["p50 ms", 8], ["p99 ms", 8], ["failed", 7]]))
    for (const floor of report.floors) {
      for (const step of floor.steps) {
        lines.push(
          row([
            [`${floor.name}: ${floor.label}`, -50],
            [String(step.concurrency), 5],
            ...measurementCells(step.measurement)
          ]) + remarks(step.measurement)
        )
      }
      if (floor.server !== undefined) lines.push(`  (${floor.server})`)
    }
  }
  if (report.scenarios.length > 0) {
    lines.push(
      "",
      row([["scenario", -30], ["conc", 5], ["ok/s", 9], ["p50 ms", 8], ["p99 ms", 8], ["failed", 7], ["floor", -28], [
        "vs floor",
        8
      ]])
    )
    for (const step of report.scenarios) {
      lines.push(
        row([
          [scenarioLabels[step.scenario], -30],
          [String(step.concurrency), 5],
          ...measurementCells(step.measurement),
          [step.floor?.label ?? "-", -28],
          [step.floor === undefined ? "-" : ratio(step.floor.ratio), 8]
        ]) + remarks(step.measurement)
      )
    }
    lines.push(
      "vs floor: ok/s ÷ the floor's ops/s (1× = as fast as the floor); for create → visible, p50 ÷ the floor's p50 (1× = as fast)."
    )
  }
  if (report.soak !== undefined) {
    const soak = report.soak
    const mb = (value: number | undefined) => value === undefined ? "-" : `${number(value)} MB`
    lines.push(
      "",
      `soak ${soak.seconds} s, ${soak.connections} connections (create, read, process): ` +
        `${number(soak.load.perSecond)} ok/s, p99 ${number(soak.load.p99, 1)} ms, ${number(soak.load.failed)} failed`,
      `server RSS: at start ${mb(report.rssAtStart)}, before the soak ${mb(soak.rssBefore)}, ` +
        `after ${mb(soak.rssAfter)}, 5 s idle later ${mb(soak.rssIdleAfter)}, peak ${mb(soak.rssPeak)}`
    )
    // Samples are 5 s apart: every sixth.
    const everyThirty = soak.samples.filter((_, index) => index % 6 === 0)
    if (everyThirty.length > 0) {
      lines.push(
        `every 30 s, server RSS (commits its store remembers): ` +
          everyThirty.map((sample) =>
            `${number(sample.megabytes)}` +
            (sample.knownCommits === undefined ? "" : ` (${number(sample.knownCommits)})`)
          ).join(", ")
      )
    }
  }
  if (report.scale !== undefined) {
    const scale = report.scale
    const first = scale.points[0]
    const mongo = report.floors.find((floor) => floor.name === "mongo")?.steps.find((step) =>
      step.concurrency === scale.concurrency
    )?.measurement
    const versus = (value: number, base: number | undefined) => base === undefined ? "-" : ratio(value / base)
    lines.push(
      "",
      `scale sweep, ${scale.concurrency} connections; seeded ${number(scale.seededCommits)} commits in ${
        number(scale.seedSeconds)
      } s`,
      row([["orders seeded", 13], ["+ bench's", 10], ["create/s", 9], ["vs 0", 6], ["vs floor", 8], ["process/s", 10], [
        "vs 0",
        6
      ], ["vs floor", 8]])
    )
    for (const point of scale.points) {
      lines.push(row([
        [number(point.seeded), 13],
        [number(point.created), 10],
        [number(point.create.perSecond), 9],
        [versus(point.create.perSecond, first?.create.perSecond), 6],
        [versus(point.create.perSecond, mongo?.perSecond), 8],
        [number(point.process.perSecond), 10],
        [versus(point.process.perSecond, first?.process.perSecond), 6],
        [versus(point.process.perSecond, mongo?.perSecond), 8]
      ]))
    }
    lines.push("vs 0: ÷ the figure with nothing seeded; vs floor: ÷ insertOne/s at the same concurrency.")
  }
  return lines.join("\n")
}

/** Writes the report to bench/results/<start time>.json and returns the path. */
export const writeReport = (report: Report) =>
  Effect.promise(async () => {
    const directory = join(root, "bench", "results")
    await mkdir(directory, { recursive: true })
    const path = join(directory, `${report.startedAt.replaceAll(":", "-").replace(/\.\d+Z$/, "Z")}.json`)
    await writeFile(path, JSON.stringify(report, null, 2) + "\n")
    return path
  })
