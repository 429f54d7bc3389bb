/**
 * The facts of an order's life, and the envelope that carries each one through
 * the event store and the bus.
 *
 * @since 0.1.0
 */
import { Data, Effect, ParseResult, Schema } from "effect"
import { OrderId, OrderName, StreamVersion } from "./Order.js"

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
  reason: Schema.String
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
  traceparent: Schema.optional(Schema.String)
}) {}

/**
 * An event as it is stored and transported. Encoded, it is plain JSON
 * (`occurredAt` an ISO-8601 string), the same in MongoDB and on Kafka.
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

/** A stored or received message that is not a valid order event. */
export class EventDecodeError extends Data.TaggedError("EventDecodeError")<{
  readonly message: string
}> {}

const decodeEnvelopeFromJson = Schema.decodeUnknown(Schema.parseJson(OrderEventEnvelope), { errors: "all" })
const decodeEnvelope = Schema.decodeUnknown(OrderEventEnvelope, { errors: "all" })

const toDecodeError = (error: ParseResult.ParseError) =>
  new EventDecodeError({ message: ParseResult.TreeFormatter.formatErrorSync(error) })

/** Decodes an envelope from a JSON string (e.g. a Kafka message value). */
export const decodeEventJson = (json: string): Effect.Effect<OrderEventEnvelope, EventDecodeError> =>
  decodeEnvelopeFromJson(json).pipe(Effect.mapError(toDecodeError))

/** Decodes an envelope from its encoded object form (e.g. a stored document). */
export const decodeEvent = (encoded: unknown): Effect.Effect<OrderEventEnvelope, EventDecodeError> =>
  decodeEnvelope(encoded).pipe(Effect.mapError(toDecodeError))

/** The JSON-ready form of an envelope. */
export const encodeEvent: (envelope: OrderEventEnvelope) => typeof OrderEventEnvelope.Encoded = Schema.encodeSync(
  OrderEventEnvelope
)
