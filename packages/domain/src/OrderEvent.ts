/**
 * The facts of an order's life, and the envelope that carries each one through
 * the event store and the bus.
 *
 * @since 0.1.0
 */
import { Data, Effect, Option, ParseResult, Schema, Struct } from "effect"
import { FailureReason, OrderId, OrderName, StreamVersion, unspecifiedFailureCode } from "./Order.js"

export class OrderCreated extends Schema.TaggedClass<OrderCreated>()("OrderCreated", {
  orderId: OrderId,
  name: OrderName
}) {}

export class OrderProcessingRequested
  extends Schema.TaggedClass<OrderProcessingRequested>()("OrderProcessingRequested", {
    orderId: OrderId
  })
{}

export class OrderProcessed extends Schema.TaggedClass<OrderProcessed>()("OrderProcessed", {
  orderId: OrderId
}) {}

export class OrderProcessingFailed extends Schema.TaggedClass<OrderProcessingFailed>()("OrderProcessingFailed", {
  orderId: OrderId,
  /** Structured since schema version 2; version 1 stored the message alone (see `StoredOrderEvent`). */
  reason: FailureReason
}) {}

/** Every event an order stream may hold. */
export const OrderEvent = Schema.Union(OrderCreated, OrderProcessingRequested, OrderProcessed, OrderProcessingFailed)
export type OrderEvent = typeof OrderEvent.Type

export const OrderEventType = Schema.Literal(
  "OrderCreated",
  "OrderProcessingRequested",
  "OrderProcessed",
  "OrderProcessingFailed"
)
export type OrderEventType = typeof OrderEventType.Type

/** The versions an append wrote, first to last. */
export const AppendRange = Schema.Struct({ first: StreamVersion, last: StreamVersion })

/**
 * Correlation ties every event of one user request together; causation names
 * the message that caused this one. A request sent with an idempotency key
 * leaves the key and a hash of its command on the events it appended, so a
 * retry finds them in the stream (absent on events stored before keys existed,
 * and on events no keyed request caused).
 */
export class EventMetadata extends Schema.Class<EventMetadata>("EventMetadata")({
  correlationId: Schema.String,
  causationId: Schema.String,
  idempotencyKey: Schema.optional(Schema.String),
  /** SHA-256 (hex) of the command's canonical JSON: tells a retry from another request reusing the key. */
  requestHash: Schema.optional(Schema.String),
  /**
   * The W3C `traceparent` of the command that appended the event, so that its
   * consumers' work joins that trace (absent when no traces were exported,
   * and on events stored before tracing existed).
   */
  traceparent: Schema.optional(Schema.String),
  /**
   * The first and last versions of the append that wrote the event, which its
   * other events share: a consumer's store can tell from it which appends it
   * was delivered whole (absent on events stored before it was recorded).
   */
  append: Schema.optional(AppendRange)
}) {}

/**
 * An event as the code works with it: always in the current shape of its
 * type, whichever version was stored (see `OrderEventEnvelopeFromStored`).
 */
export class OrderEventEnvelope extends Schema.Class<OrderEventEnvelope>("OrderEventEnvelope")(
  Schema.Struct({
    eventId: Schema.UUID,
    streamId: OrderId,
    version: StreamVersion,
    type: OrderEventType,
    occurredAt: Schema.DateTimeUtc,
    metadata: EventMetadata,
    data: OrderEvent
  }).pipe(
    Schema.filter((envelope) =>
      envelope.type === envelope.data._tag && envelope.streamId === envelope.data.orderId
        ? undefined
        : "type and streamId must match the event data"
    )
  )
) {}

/**
 * The schema version of each event type: the shape of its `data` that this
 * code writes. A type's version goes up when its stored shape changes so that
 * old documents no longer decode as the new one, and a stored shape of every
 * earlier version stays in `StoredOrderEvent`, with its upcaster.
 */
export const schemaVersions = {
  OrderCreated: 1,
  OrderProcessingRequested: 1,
  OrderProcessed: 1,
  /** 2: `reason` became `{ code, message }`. */
  OrderProcessingFailed: 2
} as const satisfies Record<OrderEventType, number>

/** An envelope as stored, its fields as JSON has them: the current envelope validates them once upcast. */
const storedEnvelope = <
  Type extends Schema.Schema.Any,
  Version extends Schema.Struct.Field,
  EventData extends Schema.Schema.Any
>(identifier: string, type: Type, schemaVersion: Version, data: EventData) =>
  Schema.Struct({
    eventId: Schema.String,
    streamId: Schema.String,
    version: Schema.Number,
    type,
    occurredAt: Schema.String,
    metadata: Schema.encodedSchema(EventMetadata),
    schemaVersion,
    data
  }).annotations({ identifier })

/** Absent on the events stored before versions were recorded, which are all version 1. */
const versionOne = Schema.optionalToRequired(Schema.Literal(1), Schema.Literal(1), {
  decode: Option.getOrElse(() => 1 as const),
  encode: Option.some
})

/**
 * The data of superseded versions, frozen: never derived from the current
 * classes, which move on. Their other fields are validated after upcasting.
 */
const OrderProcessingFailedV1 = Schema.Struct({
  _tag: Schema.Literal("OrderProcessingFailed"),
  orderId: Schema.String,
  reason: Schema.String
})

/** Every shape ever written to the store or the bus: each (type, schema version) has a member. */
export const StoredOrderEvent = Schema.Union(
  // Still at version 1, so their current shape is their version 1 (to be frozen here when one of them changes).
  storedEnvelope(
    "OrderCreated, OrderProcessingRequested or OrderProcessed v1",
    Schema.Literal("OrderCreated", "OrderProcessingRequested", "OrderProcessed"),
    versionOne,
    Schema.encodedSchema(Schema.Union(OrderCreated, OrderProcessingRequested, OrderProcessed))
  ),
  storedEnvelope(
    "OrderProcessingFailed v1",
    Schema.Literal("OrderProcessingFailed"),
    versionOne,
    OrderProcessingFailedV1
  ),
  storedEnvelope(
    "OrderProcessingFailed v2",
    Schema.Literal("OrderProcessingFailed"),
    Schema.Literal(2),
    Schema.encodedSchema(OrderProcessingFailed)
  )
).annotations({ identifier: "StoredOrderEvent" })
export type StoredOrderEvent = typeof StoredOrderEvent.Type

/** OrderProcessingFailed 1 → 2: the free text becomes the message of a failure of no known kind. */
const failedV1toV2 = (
  { data, schemaVersion: _, ...event }: Extract<
    StoredOrderEvent,
    { readonly data: typeof OrderProcessingFailedV1.Type }
  >
) => ({ ...event, data: { ...data, reason: { code: unspecifiedFailureCode, message: data.reason } } })

/** Any stored version, as the current one would have stored it. */
const upcast = (stored: StoredOrderEvent): typeof OrderEventEnvelope.Encoded =>
  stored.type === "OrderProcessingFailed" && stored.schemaVersion === 1
    ? failedV1toV2(stored)
    : Struct.omit(stored, "schemaVersion")

/**
 * An event as stored and transported: plain JSON (`occurredAt` an ISO-8601
 * string), the same in MongoDB and on Kafka, with the `schemaVersion` of its
 * data. Decoding accepts every version ever written and upcasts it; encoding
 * writes the current one. Stored documents are never rewritten.
 */
export const OrderEventEnvelopeFromStored = Schema.transform(StoredOrderEvent, OrderEventEnvelope, {
  strict: true,
  decode: upcast,
  encode: (event) => {
    const { data } = event
    // Alike, but each narrows `type` and `schemaVersion` to one member of `StoredOrderEvent`.
    return data._tag === "OrderProcessingFailed"
      ? { ...event, type: data._tag, data, schemaVersion: schemaVersions[data._tag] }
      : { ...event, type: data._tag, data, schemaVersion: schemaVersions[data._tag] }
  }
}).annotations({ identifier: "OrderEventEnvelopeFromStored" })

/** A stored or received message that is not a valid order event. */
export class EventDecodeError extends Data.TaggedError("EventDecodeError")<{
  readonly message: string
}> {}

const decodeEnvelopeFromJson = Schema.decodeUnknown(Schema.parseJson(OrderEventEnvelopeFromStored), { errors: "all" })
const decodeEnvelope = Schema.decodeUnknown(OrderEventEnvelopeFromStored, { errors: "all" })

const toDecodeError = (error: ParseResult.ParseError) =>
  new EventDecodeError({ message: ParseResult.TreeFormatter.formatErrorSync(error) })

/** Decodes an envelope, of any schema version, from a JSON string (e.g. a Kafka message value). */
export const decodeEventJson = (json: string): Effect.Effect<OrderEventEnvelope, EventDecodeError> =>
  decodeEnvelopeFromJson(json).pipe(Effect.mapError(toDecodeError))

/** Decodes an envelope, of any schema version, from its stored object form (e.g. an event of a commit document). */
export const decodeEvent = (encoded: unknown): Effect.Effect<OrderEventEnvelope, EventDecodeError> =>
  decodeEnvelope(encoded).pipe(Effect.mapError(toDecodeError))

/** The JSON-ready form of an envelope, at the current schema version. */
export const encodeEvent: (envelope: OrderEventEnvelope) => typeof StoredOrderEvent.Encoded = Schema.encodeSync(
  OrderEventEnvelopeFromStored
)
