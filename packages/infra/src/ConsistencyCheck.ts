/**
 * `pnpm check:consistency`: do the event store, the bus and the read model
 * agree? Folds every stream of the store and compares it with the read model,
 * and reports what the outbox, the dead-letter topic and the consumer groups
 * hold back, orders stuck in `processing`, and broken commit chains.
 *
 * The system is eventually consistent, so one look cannot tell lag from loss:
 * whatever the first look finds is looked at again after a settle time, and
 * counts only if it persists. A row behind the store persists when it has not
 * yet reached, after the settle time, the version the store held at the first
 * look; a partition lags when its group has not yet committed, after the
 * settle time, the end the partition had at the first look. So steady load
 * is not reported, and a stopped consumer is.
 *
 * The read model is read first, then the outbox, then the commits: a row never
 * shows an event the scan of the store could miss, and a marker written just
 * before its commit is seen with the commit.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { Order } from "@orders/domain/Order"
import type { OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { projectAll } from "@orders/domain/Projection"
import { Clock, DateTime, Duration, Effect, Either, Option, Stream } from "effect"
import { parseArgs } from "node:util"
import type { ChainAnomaly } from "./EventStoreScan.js"
import { EventStoreScan } from "./EventStoreScan.js"
import { KafkaAdmin } from "./KafkaAdmin.js"
import { ORDERS } from "./OrderReadModelPg.js"

export interface CheckOptions {
  /** The event topic, as the programs' `KAFKA_TOPIC`. */
  readonly topic: string
  /** Default `<topic>.dlq`, as the bus names it. */
  readonly deadLetterTopic?: string
  /** The consumer groups whose lag on `topic` is reported. */
  readonly groups: ReadonlyArray<string>
  /** How long a finding must persist to count. Default 5 seconds. */
  readonly settle?: Duration.DurationInput
  /** How long an order may stay `processing`, and an append unpublished. Default 1 minute. */
  readonly stuckAfter?: Duration.DurationInput
}

export const defaultSettle: Duration.Duration = Duration.seconds(5)
export const defaultStuckAfter: Duration.Duration = Duration.minutes(1)

/** An order as one side shows it. */
export interface OrderView {
  readonly version: number
  readonly status: string
  readonly name: string
  /** `code: message`, as both sides hold it; null unless the order failed. */
  readonly failure: string | null
}

export interface OrderDifference {
  readonly orderId: string
  /**
   * `missing`: no row; `behind`: the row is the store's order at an older
   * version; `differs`: the row is not the store's order at the row's
   * version; `extra`: a row for a stream the store does not have.
   */
  readonly kind: "missing" | "behind" | "differs" | "extra"
  /** The version the stream has reached (0: no stream). */
  readonly storeVersion: number
  /** The store's order at the row's version (`differs`), else at the stream's last version. */
  readonly store: OrderView | null
  readonly readModel: OrderView | null
}

export interface OutboxEntry {
  readonly id: string
  readonly streamId: string
  /** Since its writer created it, by the writer's clock. */
  readonly ageMillis: number
}

export interface StuckOrder {
  readonly orderId: string
  readonly version: number
  readonly processingForMillis: number
}

export interface PartitionLag {
  readonly group: string
  readonly partition: number
  /** The next offset the group reads (the partition's start when it never committed). */
  readonly committed: number
  readonly end: number
  readonly lag: number
  /** The group has not reached, after the settle time, the end the partition had at the first look. */
  readonly behind: boolean
}

/** What the check found: plain data, printed as a table or as JSON. */
export interface Report {
  readonly checkedAt: string
  readonly settleMillis: number
  readonly stuckAfterMillis: number
  /** The event topic whose consumer groups' lag is reported. */
  readonly topic: string
  readonly eventStore: { readonly streams: number; readonly events: number }
  readonly readModel: { readonly table: string; readonly exists: boolean; readonly rows: number }
  readonly outbox: {
    readonly entries: number
    readonly oldestAgeMillis: number | null
    /** Markers without a commit: left by writers that died between their two inserts. Harmless: a warning. */
    readonly orphans: ReadonlyArray<OutboxEntry>
    /** Appends older than `stuckAfter` still not published. */
    readonly unpublished: ReadonlyArray<OutboxEntry>
  }
  readonly deadLetters: { readonly topic: string; readonly messages: number }
  readonly lag: ReadonlyArray<PartitionLag>
  readonly orders: ReadonlyArray<OrderDifference>
  readonly chains: ReadonlyArray<ChainAnomaly>
  readonly stuck: ReadonlyArray<StuckOrder>
  /** Findings that mean something is wrong: the command exits 1 when there is any. */
  readonly problems: number
  readonly warnings: number
}

/** A row as stored, not decoded: a row the domain would refuse is a difference like any other. */
export interface StoredRow {
  readonly id: string
  readonly name: string
  readonly status: string
  readonly version: number
  readonly failure_reason: string | null
  readonly failure_code: string | null
}

interface Snapshot {
  readonly at: number
  readonly streams: number
  readonly events: number
  readonly tableExists: boolean
  readonly rows: number
  readonly orders: ReadonlyMap<string, OrderDifference>
  readonly chains: ReadonlyMap<string, ChainAnomaly>
  readonly stuck: ReadonlyMap<string, StuckOrder>
  readonly entries: number
  readonly oldestAgeMillis: number | null
  readonly orphans: ReadonlyMap<string, OutboxEntry>
  readonly unpublished: ReadonlyMap<string, OutboxEntry>
  readonly lag: ReadonlyMap<string, PartitionLag>
  readonly deadLetters: number
}

const viewOfOrder = (order: Order): OrderView => ({
  version: order.version,
  status: order.status,
  name: order.name,
  failure: order.failure === undefined ? null : `${order.failure.code}: ${order.failure.message}`
})

const viewOfRow = (row: StoredRow): OrderView => ({
  version: row.version,
  status: row.status,
  name: row.name,
  failure: row.failure_reason === null ? null : `${row.failure_code}: ${row.failure_reason}`
})

const sameView = (a: OrderView, b: OrderView) =>
  a.version === b.version && a.status === b.status && a.name === b.name && a.failure === b.failure

/** How the row of `orderId` stands against its stream; undefined when it is the stream's order. */
export const compareOrder = (
  orderId: string,
  events: ReadonlyArray<OrderEventEnvelope>,
  row: StoredRow | undefined
): OrderDifference | undefined => {
  const latest = projectAll(undefined, events)
  const storeVersion = latest?.version ?? 0
  const store = latest === undefined ? null : viewOfOrder(latest)
  if (row === undefined) {
    return store === null ? undefined : { orderId, kind: "missing", storeVersion, store, readModel: null }
  }
  const readModel = viewOfRow(row)
  if (store === null) return { orderId, kind: "extra", storeVersion, store, readModel }
  if (readModel.version >= storeVersion) {
    return sameView(store, readModel) ? undefined : { orderId, kind: "differs", storeVersion, store, readModel }
  }
  const atRow = projectAll(undefined, events.filter((event) => event.version <= readModel.version))
  return atRow !== undefined && sameView(viewOfOrder(atRow), readModel)
    ? { orderId, kind: "behind", storeVersion, store, readModel }
    : { orderId, kind: "differs", storeVersion, store: atRow === undefined ? null : viewOfOrder(atRow), readModel }
}

const lagKey = (group: string, partition: number) => `${group}/${partition}`

const look = (options: Required<CheckOptions>, stuckAfter: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const store = yield* EventStoreScan
    const kafka = yield* KafkaAdmin
    const at = yield* Clock.currentTimeMillis

    const [table] = yield* sql<{ found: string | null }>`SELECT to_regclass(${ORDERS}) AS found`.pipe(Effect.orDie)
    const exists = table?.found != null
    const rows = new Map<string, StoredRow>()
    if (exists) {
      const found = yield* sql<StoredRow>`SELECT id, name, status, version, failure_reason, failure_code FROM ${
        sql(ORDERS)
      }`
        .pipe(
          Effect.orDie
        )
      for (const row of found) rows.set(row.id, row)
    }
    const rowCount = rows.size

    const markers = yield* store.outbox
    const markersOf = new Map<string, Array<(typeof markers)[number]>>()
    for (const marker of markers) {
      const ofStream = markersOf.get(marker.streamId)
      if (ofStream === undefined) markersOf.set(marker.streamId, [marker])
      else ofStream.push(marker)
    }
    const entry = (marker: (typeof markers)[number]): OutboxEntry => ({
      id: marker._id,
      streamId: marker.streamId,
      ageMillis: Math.max(0, at - marker.createdAt.getTime())
    })

    const orders = new Map<string, OrderDifference>()
    const chains = new Map<string, ChainAnomaly>()
    const stuck = new Map<string, StuckOrder>()
    const orphans = new Map<string, OutboxEntry>()
    const unpublished = new Map<string, OutboxEntry>()
    let streams = 0
    let events = 0
    yield* store.streams().pipe(Stream.runForEach((history) =>
      Effect.sync(() => {
        streams++
        events += history.events.length
        for (const anomaly of history.anomalies) chains.set(`${anomaly.kind} ${anomaly.commit}`, anomaly)
        const difference = compareOrder(history.streamId, history.events, rows.get(history.streamId))
        rows.delete(history.streamId)
        if (difference !== undefined) orders.set(history.streamId, difference)
        const last = history.events.at(-1)
        if (last !== undefined && projectAll(undefined, history.events)?.status === "processing") {
          const processingForMillis = at - DateTime.toEpochMillis(last.occurredAt)
          if (processingForMillis > stuckAfter) {
            stuck.set(history.streamId, { orderId: history.streamId, version: last.version, processingForMillis })
          }
        }
        const commits = new Set(history.commits)
        for (const marker of markersOf.get(history.streamId) ?? []) {
          const found = entry(marker)
          if (!commits.has(marker._id)) orphans.set(found.id, found)
          else if (found.ageMillis > stuckAfter) unpublished.set(found.id, found)
        }
        markersOf.delete(history.streamId)
      })
    ))
    for (const row of rows.values()) orders.set(row.id, compareOrder(row.id, [], row)!)
    for (const marker of [...markersOf.values()].flat()) orphans.set(marker._id, entry(marker))

    const ranges = yield* kafka.ranges(options.topic)
    const lag = new Map<string, PartitionLag>()
    for (const group of options.groups) {
      const committed = yield* kafka.committed(group, options.topic, ranges.map((range) => range.partition))
      for (const range of ranges) {
        const next = committed.get(range.partition) ?? range.start
        lag.set(lagKey(group, range.partition), {
          group,
          partition: range.partition,
          committed: next,
          end: range.end,
          lag: Math.max(0, range.end - next),
          behind: false
        })
      }
    }
    const deadLetters = (yield* kafka.ranges(options.deadLetterTopic))
      .reduce((sum, range) => sum + range.end - range.start, 0)

    return {
      at,
      streams,
      events,
      tableExists: exists,
      rows: rowCount,
      orders,
      chains,
      stuck,
      entries: markers.length,
      oldestAgeMillis: markers.length === 0
        ? null
        : markers.reduce((oldest, marker) => Math.max(oldest, entry(marker).ageMillis), 0),
      orphans,
      unpublished,
      lag,
      deadLetters
    } satisfies Snapshot
  })

/** Whether the first look found anything that a second look could clear. */
const hasFindings = (snapshot: Snapshot) =>
  snapshot.orders.size + snapshot.chains.size + snapshot.stuck.size + snapshot.orphans.size +
        snapshot.unpublished.size > 0 ||
  [...snapshot.lag.values()].some((partition) => partition.lag > 0)

/** What the second look found that the first one found too (`still`: and that did not move on enough). */
const persisting = <A>(
  first: ReadonlyMap<string, A>,
  second: ReadonlyMap<string, A>,
  still: (first: A, second: A) => boolean = () => true
): ReadonlyArray<A> =>
  [...second].flatMap(([key, found]) => {
    const before = first.get(key)
    return before !== undefined && still(before, found) ? [found] : []
  })

/** Looks, and when something looks wrong, looks again after the settle time: what persists is reported. */
export const check = Effect.fn("ConsistencyCheck.check")(function*(options: CheckOptions) {
  const settings: Required<CheckOptions> = {
    deadLetterTopic: `${options.topic}.dlq`,
    settle: defaultSettle,
    stuckAfter: defaultStuckAfter,
    ...options
  }
  const settle = Duration.decode(settings.settle)
  const stuckAfter = Duration.toMillis(settings.stuckAfter)
  const first = yield* look(settings, stuckAfter)
  const second = hasFindings(first)
    ? yield* Effect.sleep(settle).pipe(Effect.zipRight(look(settings, stuckAfter)))
    : first
  const orders = persisting(
    first.orders,
    second.orders,
    (before, after) =>
      (after.kind !== "behind" && after.kind !== "missing") ||
      (after.readModel?.version ?? 0) < before.storeVersion
  )
  const lag = [...second.lag.values()].map((partition) => {
    const before = first.lag.get(lagKey(partition.group, partition.partition))
    return { ...partition, behind: before !== undefined && partition.committed < before.end }
  })
  const chains = persisting(first.chains, second.chains)
  const stuck = persisting(first.stuck, second.stuck)
  const orphans = persisting(first.orphans, second.orphans)
  const unpublished = persisting(first.unpublished, second.unpublished)
  const behind = lag.filter((partition) => partition.behind).length
  return {
    checkedAt: DateTime.formatIso(DateTime.unsafeMake(first.at)),
    settleMillis: Duration.toMillis(settle),
    stuckAfterMillis: stuckAfter,
    topic: settings.topic,
    eventStore: { streams: second.streams, events: second.events },
    readModel: { table: ORDERS, exists: second.tableExists, rows: second.rows },
    outbox: { entries: second.entries, oldestAgeMillis: second.oldestAgeMillis, orphans, unpublished },
    deadLetters: { topic: settings.deadLetterTopic, messages: second.deadLetters },
    lag,
    orders,
    chains,
    stuck,
    problems: orders.length + chains.length + stuck.length + unpublished.length + behind +
      (second.deadLetters > 0 ? 1 : 0) + (second.tableExists ? 0 : 1),
    warnings: orphans.length
  } satisfies Report
})

/** 0 when nothing is wrong, 1 otherwise. */
export const exitCode = (report: Report): number => report.problems === 0 ? 0 : 1

const count = (n: number, noun: string, plural = `${noun}s`) =>
  `${n.toLocaleString("en-US")} ${n === 1 ? noun : plural}`
const age = (millis: number) => Duration.format(Duration.millis(Math.round(millis)))

const table = (title: string, headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>) => {
  if (rows.length === 0) return []
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    ("  " + cells.map((cell, i) => cell.padEnd(widths[i]!)).join("  ")).trimEnd()
  return ["", `${title} (${rows.length})`, line(headers), ...rows.map(line)]
}

const showOrder = (view: OrderView | null) =>
  view === null
    ? "-"
    : `v${view.version} ${view.status} ${JSON.stringify(view.name)}${view.failure === null ? "" : ` (${view.failure})`}`

/** The report as an operator reads it: a summary, then a table per kind of finding. */
export const render = (report: Report): string => {
  const lagOf = (group: string) => {
    const partitions = report.lag.filter((partition) => partition.group === group)
    const total = partitions.reduce((sum, partition) => sum + partition.lag, 0)
    const behind = partitions.filter((partition) => partition.behind).length
    return `${group} ${total}${behind > 0 ? ` (${count(behind, "partition")} behind)` : ""}`
  }
  const groups = [...new Set(report.lag.map((partition) => partition.group))]
  const outbox = report.outbox
  const status = report.problems === 0
    ? `consistent${report.warnings > 0 ? `, ${count(report.warnings, "warning")}` : ""}`
    : `NOT consistent: ${count(report.problems, "problem")}${
      report.warnings > 0 ? `, ${count(report.warnings, "warning")}` : ""
    }`
  return [
    `Consistency check at ${report.checkedAt} (settle ${age(report.settleMillis)}, stuck after ${
      age(report.stuckAfterMillis)
    })`,
    "",
    `  event store    ${count(report.eventStore.streams, "order")}, ${count(report.eventStore.events, "event")}`,
    `  read model     ${
      report.readModel.exists ? count(report.readModel.rows, "row") : `table ${report.readModel.table} missing`
    }`,
    `  outbox         ${count(outbox.entries, "entry", "entries")}${
      outbox.oldestAgeMillis === null ? "" : `, oldest ${age(outbox.oldestAgeMillis)} old`
    }, ${count(outbox.orphans.length, "orphaned marker")}`,
    `  dead letters   ${count(report.deadLetters.messages, "message")} in ${report.deadLetters.topic}`,
    `  consumer lag   ${groups.length === 0 ? `no partitions in ${report.topic}` : groups.map(lagOf).join(", ")}`,
    ...table(
      "orders that differ",
      ["order", "problem", "event store", "read model"],
      report.orders.map((found) => [
        found.orderId,
        found.kind,
        showOrder(found.store),
        showOrder(found.readModel)
      ])
    ),
    ...table(
      "broken commit chains",
      ["stream", "problem", "commit", "detail"],
      report.chains.map((anomaly) => [anomaly.streamId, anomaly.kind, anomaly.commit, anomaly.detail])
    ),
    ...table(
      "orders stuck in processing",
      ["order", "version", "processing for"],
      report.stuck.map((order) => [order.orderId, String(order.version), age(order.processingForMillis)])
    ),
    ...table(
      "appends not published",
      ["commit", "age"],
      outbox.unpublished.map((found) => [found.id, age(found.ageMillis)])
    ),
    ...table(
      "orphaned outbox markers (warning: a writer died between its two inserts; nothing was lost)",
      ["marker", "age"],
      outbox.orphans.map((found) => [found.id, age(found.ageMillis)])
    ),
    ...table(
      "partitions with lag (behind: the group did not catch up within the settle time)",
      ["group", "partition", "committed", "end", "lag", "behind"],
      report.lag.filter((partition) => partition.lag > 0 || partition.behind).map((partition) => [
        partition.group,
        String(partition.partition),
        String(partition.committed),
        String(partition.end),
        String(partition.lag),
        partition.behind ? "yes" : "no"
      ])
    ),
    "",
    status
  ].join("\n")
}

export const usage = "usage: check:consistency [--json] [--settle <duration>] [--stuck-after <duration>]\n" +
  "  durations as `5s`, `500ms`, `2m`, `1h` or `10 seconds`; defaults: settle 5s, stuck after 1m"

export interface CommandLine {
  readonly json: boolean
  readonly settle: Duration.Duration
  readonly stuckAfter: Duration.Duration
}

const shortUnits: Record<string, string> = { ms: "millis", s: "seconds", m: "minutes", h: "hours" }

const parseDuration = (flag: string, text: string | undefined, fallback: Duration.Duration) => {
  if (text === undefined) return Either.right(fallback)
  const short = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim())
  return Option.match(Duration.decodeUnknown(short === null ? text.trim() : `${short[1]} ${shortUnits[short[2]!]}`), {
    onNone: () => Either.left(`--${flag}: not a duration: ${JSON.stringify(text)}`),
    onSome: Either.right
  })
}

/** The command's arguments, or what is wrong with them. */
export const parseCommandLine = (args: ReadonlyArray<string>): Either.Either<CommandLine, string> =>
  Either.try({
    try: () =>
      parseArgs({
        args: [...args],
        options: { json: { type: "boolean" }, settle: { type: "string" }, "stuck-after": { type: "string" } },
        strict: true,
        allowPositionals: false
      }).values,
    catch: (error) => (error instanceof Error ? error.message : String(error))
  }).pipe(
    Either.flatMap((values) =>
      Either.all({
        json: Either.right(values.json === true),
        settle: parseDuration("settle", values.settle, defaultSettle),
        stuckAfter: parseDuration("stuck-after", values["stuck-after"], defaultStuckAfter)
      })
    )
  )
