/**
 * What the stores say after a scenario, judged against the rules of the
 * design: every figure comes from the event store, the outbox and the read
 * model; the load generator's record only says which commands were answered
 * how, so that an accepted command can be looked up by its correlation id.
 */
import type { OrderState } from "@orders/domain/Order"
import { evolve, fold, initialState, toOrder } from "@orders/domain/Order"
import type { OrderCommand } from "@orders/domain/OrderCommand"
import { CompleteProcessing, CreateOrder, FailProcessing, RequestProcessing } from "@orders/domain/OrderCommand"
import { decide } from "@orders/domain/OrderDecider"
import type { OrderEvent, OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { decodeEvent } from "@orders/domain/OrderEvent"
import type { StoredRow } from "@orders/infra/ConsistencyCheck"
import { withMongo, withPostgres } from "@orders/infra/testing/stack"
import { Effect, Either } from "effect"
import type { CommandKind, Sent } from "./Load.js"

export interface Stores {
  /** Every stream of the event store, its events in version order. */
  readonly streams: ReadonlyMap<string, ReadonlyArray<OrderEventEnvelope>>
  readonly rows: ReadonlyMap<string, StoredRow>
  /** Outbox markers whose commit exists: appended, not yet known to be published. */
  readonly unpublishedCommits: number
}

export const readStores = (database: string, schema: string) =>
  Effect.gen(function*() {
    const [commits, unpublishedCommits] = yield* withMongo(async (client) => {
      const db = client.db(database)
      const markers = await db.collection<{ _id: string }>("outbox").find({}, { projection: { _id: 1 } }).toArray()
      return [
        await db.collection("commits").find().toArray(),
        await db.collection<{ _id: string }>("commits").countDocuments({ _id: { $in: markers.map((m) => m._id) } })
      ] as const
    })
    const events = yield* Effect.forEach(commits.flatMap((commit) => commit.events as Array<unknown>), decodeEvent)
    const streams = new Map<string, Array<OrderEventEnvelope>>()
    for (const event of events) streams.set(event.streamId, [...(streams.get(event.streamId) ?? []), event])
    for (const stream of streams.values()) stream.sort((a, b) => a.version - b.version)
    const rows = yield* withPostgres((client) =>
      client.query<StoredRow>(`SELECT id, name, status, version, failure_reason, failure_code FROM ${schema}.orders`)
    )
    return {
      streams,
      rows: new Map(rows.rows.map((row) => [row.id, row])),
      unpublishedCommits
    } satisfies Stores
  }).pipe(Effect.orDie)

const eventCount = (stores: Stores) => [...stores.streams.values()].reduce((sum, events) => sum + events.length, 0)

/** The command that the decider turns into `event`: a stream follows the rules if each of its events is so decided. */
const commandOf = (event: OrderEvent): OrderCommand => {
  switch (event._tag) {
    case "OrderCreated":
      return CreateOrder.make({ orderId: event.orderId, name: event.name })
    case "OrderProcessingRequested":
      return RequestProcessing.make({ orderId: event.orderId })
    case "OrderProcessed":
      return CompleteProcessing.make({ orderId: event.orderId })
    case "OrderProcessingFailed":
      return FailProcessing.make({ orderId: event.orderId, reason: event.reason })
  }
}

/** Why a stream breaks the decider's rules (a second creation, a second outcome for one request…), if it does. */
const ruleBroken = (events: ReadonlyArray<OrderEventEnvelope>): string | undefined => {
  let state: OrderState = initialState
  for (const [i, event] of events.entries()) {
    if (event.version !== i + 1) return `version ${event.version} where ${i + 1} belongs`
    if (Either.isLeft(decide(commandOf(event.data), state))) {
      return `${event.type} at version ${event.version} follows status ${state.status}`
    }
    state = evolve(state, event.data)
  }
  return undefined
}

/** The row the read model should hold for a stream: the fold of its events. */
const foldedRow = (events: ReadonlyArray<OrderEventEnvelope>) =>
  toOrder(fold(events.map((event) => event.data)), events.length)

/** Rows behind the store (lost), and rows that disagree with the fold of their stream or have none (duplicated). */
const readModelDifferences = (stores: Stores) => {
  const behind: Array<string> = []
  const wrong: Array<string> = []
  for (const [id, events] of stores.streams) {
    const expected = foldedRow(events)
    if (expected === undefined) continue
    const row = stores.rows.get(id)
    if (row === undefined || row.version < expected.version) {
      behind.push(`${id}: the store is at version ${expected.version}, the read model at ${row?.version ?? "none"}`)
    } else if (
      row.version !== expected.version || row.status !== expected.status || row.name !== expected.name ||
      (row.failure_reason ?? undefined) !== expected.failure?.message ||
      (row.failure_code ?? undefined) !== expected.failure?.code
    ) {
      wrong.push(`${id}: read model ${JSON.stringify(row)} is not the fold ${JSON.stringify(expected)}`)
    }
  }
  for (const id of stores.rows.keys()) {
    if (!stores.streams.has(id)) wrong.push(`${id}: a read-model row without a stream`)
  }
  return { behind, wrong }
}

const stuckOf = (stores: Stores) => [
  ...[...stores.streams].filter(([, events]) => foldedRow(events)?.status === "processing").map(([id]) =>
    `${id}: still processing`
  ),
  ...(stores.unpublishedCommits > 0 ? [`${stores.unpublishedCommits} commits still in the outbox`] : [])
]

/** The read model equals the fold of the store, no order waits for its outcome, and the outbox holds no commit. */
export const converged = (stores: Stores) => {
  const { behind, wrong } = readModelDifferences(stores)
  return behind.length === 0 && wrong.length === 0 && stuckOf(stores).length === 0
}

const requiredEvent: Record<CommandKind, OrderEvent["_tag"]> = {
  create: "OrderCreated",
  process: "OrderProcessingRequested"
}

export interface Verdict {
  /** An accepted command without its event, or a stored event the read model never got. */
  readonly lost: ReadonlyArray<string>
  /** A stream that breaks the decider's rules, a refused command whose event was stored, a row unlike the fold. */
  readonly duplicated: ReadonlyArray<string>
  /** Orders still processing, commits still in the outbox. */
  readonly stuck: ReadonlyArray<string>
  readonly events: number
  readonly rows: number
  /** Commands answered 503 AppendOutcomeUnknown, and how many of them landed after all. */
  readonly outcomeUnknown: { readonly answered: number; readonly landed: number }
}

/** Every stored event by the correlation id of the request that caused it. */
export const eventsByCorrelation = (stores: Stores): ReadonlyMap<string, ReadonlyArray<OrderEventEnvelope>> => {
  const byCorrelation = new Map<string, Array<OrderEventEnvelope>>()
  for (const events of stores.streams.values()) {
    for (const event of events) {
      const id = event.metadata.correlationId
      byCorrelation.set(id, [...(byCorrelation.get(id) ?? []), event])
    }
  }
  return byCorrelation
}

/** The command's own event in the store (found by its correlation id), if it landed. */
export const landed = (byCorrelation: ReadonlyMap<string, ReadonlyArray<OrderEventEnvelope>>, command: Sent) =>
  byCorrelation.get(command.correlationId)?.find((event) =>
    event.type === requiredEvent[command.kind] && (command.version === undefined || event.version === command.version)
  )

export const judge = (stores: Stores, sent: ReadonlyArray<Sent>): Verdict => {
  const byCorrelation = eventsByCorrelation(stores)
  const lost: Array<string> = []
  const duplicated: Array<string> = []
  const unknown = sent.filter((command) => command.tag === "AppendOutcomeUnknown")
  for (const command of sent) {
    if (typeof command.status !== "number") continue
    const event = landed(byCorrelation, command)
    if (command.status < 300 && event === undefined) {
      lost.push(`${command.kind} of ${command.orderId} answered ${command.status}, but its event is not stored`)
    }
    const refused = command.status >= 400 && command.tag !== "AppendOutcomeUnknown"
    if (refused && event !== undefined) {
      duplicated.push(`${command.kind} of ${command.orderId} answered ${command.status} ${command.tag}, yet stored`)
    }
  }
  for (const [id, events] of stores.streams) {
    const broken = ruleBroken(events)
    if (broken !== undefined) duplicated.push(`${id}: ${broken}`)
  }
  const { behind, wrong } = readModelDifferences(stores)
  return {
    lost: [...lost, ...behind],
    duplicated: [...duplicated, ...wrong],
    stuck: stuckOf(stores),
    events: eventCount(stores),
    rows: stores.rows.size,
    outcomeUnknown: {
      answered: unknown.length,
      landed: unknown.filter((command) => landed(byCorrelation, command) !== undefined).length
    }
  }
}
