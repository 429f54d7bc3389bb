/**
 * The Orders HTTP API as data: endpoints, payloads, headers, responses and
 * errors. The server implements it, the OpenAPI document is derived from it,
 * and another program can derive a typed client from it
 * (`HttpApiClient.make(OrdersApi)`). It imports nothing server-only.
 */
import { HttpApi, HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { IdempotencyKeyReused, VersionMismatch } from "@orders/domain/CommandHandler"
import { FailureReason, Order, OrderId, OrderName } from "@orders/domain/Order"
import {
  AppendOutcomeUnknown,
  ConcurrencyConflict,
  InvalidOrderTransition,
  OrderAlreadyExists,
  OrderNotFound,
  ServiceUnavailable
} from "@orders/domain/OrderError"
import { OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { Schema } from "effect"
import {
  asProblem,
  BadRequest,
  InternalServerError,
  MethodNotAllowed,
  PayloadTooLarge,
  ProblemContentType,
  RequestTimeout,
  RouteNotFound,
  Unauthorized,
  UnsupportedMediaType
} from "./ProblemDetails.js"

/** Largest request body the API reads: an order is a few hundred bytes. */
export const MaxBodyBytes = 64 * 1024

export const MaxPageSize = 1000

/** Where the server serves its documents, beside the API's paths: these take precedence over `/:id`. */
export const DocumentPaths = { swaggerUi: "/docs", openApi: "/openapi.json" } as const

/** The one media type a body may have (`POST /`); `POST /:id` takes no body. */
export const JsonContentType = "application/json"

/** `GET /:id?at=` named a version the order has not reached. */
export class OrderVersionNotFound extends Schema.TaggedError<OrderVersionNotFound>()("OrderVersionNotFound", {
  orderId: Schema.String,
  version: Schema.Int,
  message: Schema.String
}) {
  static of(orderId: string, version: number) {
    return new OrderVersionNotFound({ orderId, version, message: `order '${orderId}' has no version ${version}` })
  }
}

/** Every error the API answers, as the problem document it is sent as. */
export const Problems = {
  BadRequest: asProblem(BadRequest, {
    status: 400,
    title: "Bad request",
    description: "The request is invalid: `issues` names each invalid field (path, query, header or body)"
  }),
  Unauthorized: asProblem(Unauthorized, {
    status: 401,
    title: "Unauthorized",
    description: "A bearer token is required (only when the server is configured with API_TOKENS)"
  }),
  RouteNotFound: asProblem(RouteNotFound, { status: 404, title: "Not found", description: "No such path" }),
  OrderNotFound: asProblem(OrderNotFound, { status: 404, title: "Order not found" }),
  OrderVersionNotFound: asProblem(OrderVersionNotFound, { status: 404, title: "Order version not found" }),
  MethodNotAllowed: asProblem(MethodNotAllowed, {
    status: 405,
    title: "Method not allowed",
    description: "The path exists, but not with this method: the `Allow` header lists those it has"
  }),
  RequestTimeout: asProblem(RequestTimeout, { status: 408, title: "Request timeout" }),
  OrderAlreadyExists: asProblem(OrderAlreadyExists, { status: 409, title: "Order already exists" }),
  InvalidOrderTransition: asProblem(InvalidOrderTransition, {
    status: 409,
    title: "Invalid order transition",
    renamed: { status: "orderStatus" }
  }),
  ConcurrencyConflict: asProblem(ConcurrencyConflict, {
    status: 409,
    title: "Concurrency conflict",
    description: "The order kept changing while the command was decided; retry"
  }),
  VersionMismatch: asProblem(VersionMismatch, {
    status: 412,
    title: "Precondition failed",
    description: "`If-Match` named a version that is not the order's current one; nothing was changed"
  }),
  PayloadTooLarge: asProblem(PayloadTooLarge, { status: 413, title: "Content too large" }),
  UnsupportedMediaType: asProblem(UnsupportedMediaType, {
    status: 415,
    title: "Unsupported media type",
    description: "`POST /` takes `application/json` only; `POST /{id}` takes no body"
  }),
  IdempotencyKeyReused: asProblem(IdempotencyKeyReused, {
    status: 422,
    title: "Idempotency key reused",
    description: "The `Idempotency-Key` was already used on this order for a different request"
  }),
  InternalServerError: asProblem(InternalServerError, {
    status: 500,
    title: "Internal server error",
    description: "A bug: it is logged; the request may or may not have been applied"
  }),
  ServiceUnavailable: asProblem(ServiceUnavailable, {
    status: 503,
    title: "Service unavailable",
    description: "A backing server cannot be reached; nothing was changed; retry"
  }),
  AppendOutcomeUnknown: asProblem(AppendOutcomeUnknown, {
    status: 503,
    title: "Outcome unknown",
    description: "The event store did not confirm the write; read the order, or retry with the same Idempotency-Key"
  })
} as const

/** An id as a client may choose it: `.` and `..` would be unreachable, since clients rewrite such path segments. */
export const OrderIdInput = OrderId.pipe(
  Schema.filter((id) => id !== "." && id !== "..", {
    message: () => "must not be . or .. (clients rewrite such path segments)",
    jsonSchema: { not: { enum: [".", ".."] } }
  })
).annotations({
  identifier: "OrderIdInput",
  description: "Id of an order: 1-128 of A-Z a-z 0-9 . _ ~ - (URL-safe), other than . and .."
})

/** Every field optional in a request is absent or valid: never `undefined`, which JSON does not have. */
const optional = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { exact: true })

export const CreateOrderRequest = Schema.Struct({
  id: OrderIdInput,
  name: OrderName,
  /** Kept for the original API's clients: an order always starts as "new". */
  status: optional(Schema.Literal("new"))
}).annotations({ identifier: "CreateOrderRequest", description: "No other member is allowed" })

export const OrderPath = Schema.Struct({ id: OrderIdInput })

/** An integer query parameter: a string on the wire, documented as the integer it stands for. */
const queryInteger = (options: {
  readonly minimum: number
  readonly maximum?: number
  readonly default?: number
  readonly description: string
}) => {
  const range = options.maximum === undefined
    ? `an integer of at least ${options.minimum}`
    : `an integer from ${options.minimum} to ${options.maximum}`
  return Schema.NumberFromString.pipe(
    Schema.int(),
    Schema.greaterThanOrEqualTo(options.minimum),
    Schema.lessThanOrEqualTo(options.maximum ?? Number.MAX_SAFE_INTEGER)
  ).annotations({
    message: () => ({ message: `must be ${range}`, override: true }),
    description: options.description,
    jsonSchema: {
      type: "integer",
      minimum: options.minimum,
      ...(options.maximum === undefined ? {} : { maximum: options.maximum }),
      ...(options.default === undefined ? {} : { default: options.default }),
      description: options.description
    }
  })
}

const pageSize = queryInteger({
  minimum: 1,
  maximum: MaxPageSize,
  default: MaxPageSize,
  description: `Page size (default ${MaxPageSize})`
})

export const ListOrdersParams = Schema.Struct({
  limit: optional(pageSize),
  // An id, not any string: the cursor reaches PostgreSQL, which refuses a NUL.
  after: optional(OrderId)
})

export const GetOrderParams = Schema.Struct({
  at: optional(queryInteger({
    minimum: 1,
    description: "The order as it was after this version, folded from the event store (default: the read model's)"
  }))
})

export const ListEventsParams = Schema.Struct({
  after: optional(queryInteger({ minimum: 0, default: 0, description: "Return the events after this version" })),
  limit: optional(pageSize)
})

/** `If-Match: "<version>"` (an ETag this API sent) or `*`. */
export const IfMatch = Schema.String.pipe(
  Schema.pattern(/^(\*|"(0|[1-9][0-9]{0,14})")$/, { message: () => "must be an ETag of this API, such as \"3\", or *" })
).annotations({
  description: "Apply the command only if the order is at this version (its ETag, e.g. \"3\"); 412 otherwise"
})

/** Printable ASCII: the key is compared as it is, and stored with the events. */
export const IdempotencyKey = Schema.String.pipe(
  Schema.pattern(/^[\x21-\x7E]{1,255}$/, { message: () => "must be 1-255 printable ASCII characters" })
).annotations({
  description:
    "A retry with the same key and request gets the first answer and changes nothing; the same key with another request gets 422. Kept with the order's events, scoped to the order"
})

export const CreateHeaders = Schema.Struct({ "idempotency-key": optional(IdempotencyKey) })
export const ProcessHeaders = Schema.Struct({
  "if-match": optional(IfMatch),
  "idempotency-key": optional(IdempotencyKey)
})

/**
 * An order as the API sends it: the domain's `Order`, plus `failureReason`
 * for the clients written before failures had codes.
 */
export const OrderResponse = Schema.transform(
  Schema.Struct({
    ...Order.fields,
    failure: Schema.optional(FailureReason).annotations({
      description: "Why processing failed: `code` for programs, `message` for people. Present on failed orders only"
    }),
    failureReason: Schema.optional(Schema.String.annotations({ jsonSchema: { deprecated: true } })).annotations({
      description: "Deprecated: `failure.message`, kept for earlier clients. Present on failed orders only"
    })
  }).annotations({ identifier: "Order", description: "An order: `version` is the version of its last event" }),
  Order,
  {
    strict: true,
    decode: ({ failureReason: _, ...order }) => order,
    encode: (_, order) => ({ ...order, failureReason: order.failure?.message })
  }
).annotations({ description: "The order" })

/**
 * What `OrderResponse` encodes an order to, without validating the order
 * again: orders are validated where they are made, before their events are
 * appended (the read model's rows are built from them). A page of 1,000
 * orders took about 7 ms of CPU through the schema. `OrdersApi.test` holds
 * it to the schema's own output, key order included, for every kind of order.
 */
export const orderResponseJson = (order: Order): typeof OrderResponse.Encoded => {
  const { failure, id, name, status, version } = order
  return failure === undefined
    ? { id, name, status, version }
    : {
      id,
      name,
      status,
      version,
      failure: { code: failure.code, message: failure.message },
      failureReason: failure.message
    }
}

/** The ETag of an order (or of a command's result) is its version. */
export const etag = (version: number) => `"${version}"`

/** Reads a validated `If-Match`: the version it requires, or none for `*`. */
export const ifMatchVersion = (ifMatch: string): number | undefined =>
  ifMatch === "*" ? undefined : Number(ifMatch.slice(1, -1))

const header = (description: string) => ({ description, schema: { type: "string" } })
const etagHeader = header("The order's version, quoted: send it back in If-Match")

/** The parts of the generated OpenAPI document that are completed by hand (see `completeDocument`). */
export interface DocumentResponse {
  description: string
  content?: Record<string, { schema: unknown }>
  headers?: Record<string, unknown>
}
export interface DocumentOperation {
  responses: Record<string, DocumentResponse>
  security: Array<Record<string, Array<string>>>
}
export interface Document {
  paths: Record<string, Record<string, DocumentOperation>>
  components: { schemas: Record<string, Record<string, unknown>>; securitySchemes: Record<string, unknown> }
}

/** Response headers are not part of HttpApi's schemas: described here, set by the handlers. */
const documentHeaders = (status: number, headers: Record<string, unknown>) => (spec: Record<string, unknown>) => {
  const response = (spec as unknown as DocumentOperation).responses[status]
  if (response !== undefined) response.headers = { ...response.headers, ...headers }
  return spec
}

export class OrdersGroup extends HttpApiGroup.make("orders")
  .add(
    HttpApiEndpoint.post("create", "/")
      .setPayload(CreateOrderRequest)
      .setHeaders(CreateHeaders)
      .addSuccess(OrderResponse, { status: 201 })
      .addError(Problems.RequestTimeout)
      .addError(Problems.OrderAlreadyExists)
      .addError(Problems.ConcurrencyConflict)
      .addError(Problems.UnsupportedMediaType)
      .addError(Problems.IdempotencyKeyReused)
      .addError(Problems.AppendOutcomeUnknown)
      .annotate(OpenApi.Summary, "Create an order")
      .annotate(
        OpenApi.Transform,
        documentHeaders(201, { Location: header("The order's path"), ETag: etagHeader })
      )
  )
  .add(
    HttpApiEndpoint.post("process", "/:id")
      .setPath(OrderPath)
      .setHeaders(ProcessHeaders)
      .addSuccess(OrderResponse, { status: 202 })
      .addError(Problems.OrderNotFound)
      .addError(Problems.InvalidOrderTransition)
      .addError(Problems.ConcurrencyConflict)
      .addError(Problems.VersionMismatch)
      .addError(Problems.UnsupportedMediaType)
      .addError(Problems.IdempotencyKeyReused)
      .addError(Problems.AppendOutcomeUnknown)
      .annotate(OpenApi.Summary, "Request processing of an order")
      .annotate(
        OpenApi.Description,
        "Accepted: the order is now processing; the processor records the outcome shortly after. Send no body."
      )
      .annotate(OpenApi.Transform, documentHeaders(202, { ETag: etagHeader }))
  )
  .add(
    HttpApiEndpoint.get("list", "/")
      .setUrlParams(ListOrdersParams)
      .addSuccess(Schema.Array(OrderResponse))
      .annotate(OpenApi.Summary, "List orders, sorted by id (read model: eventually consistent)")
  )
  .add(
    HttpApiEndpoint.get("get", "/:id")
      .setPath(OrderPath)
      .setUrlParams(GetOrderParams)
      .addSuccess(OrderResponse)
      .addError(Problems.OrderNotFound)
      .addError(Problems.OrderVersionNotFound)
      .annotate(OpenApi.Summary, "Get an order (read model: eventually consistent; with `at`, from the event store)")
      .annotate(OpenApi.Transform, documentHeaders(200, { ETag: etagHeader }))
  )
  .add(
    HttpApiEndpoint.get("events", "/:id/events")
      .setPath(OrderPath)
      .setUrlParams(ListEventsParams)
      .addSuccess(Schema.Array(OrderEventEnvelope))
      .addError(Problems.OrderNotFound)
      .annotate(OpenApi.Summary, "The order's events in version order, from the event store, a page at a time")
  )
{}

/**
 * Completes what OpenAPI generation leaves out or gets wrong here:
 * - every error is `application/problem+json` (a status with several errors
 *   loses its members' content type when they are merged);
 * - a 400 is `BadRequest`: the server answers every invalid request with it,
 *   never with the `HttpApiDecodeError` that `HttpApi.make` declares;
 * - each schema is titled with its name, not with its last refinement
 *   (`maxLength(128)`), and the domain's `OrderName` and `DateTimeUtc` are
 *   described as the server checks them, not as their encoded side says.
 */
export const completeDocument = (spec: Record<string, unknown>): Record<string, unknown> => {
  const document = spec as unknown as Document
  const schemas = document.components.schemas
  for (const methods of Object.values(document.paths)) {
    for (const operation of Object.values(methods)) {
      for (const [status, response] of Object.entries(operation.responses)) {
        const [schema] = Object.values(response.content ?? {})
        if (Number(status) < 400 || schema === undefined) continue
        response.content = {
          [ProblemContentType]: status === "400" ? { schema: { $ref: "#/components/schemas/BadRequest" } } : schema
        }
        if (status === "400") response.description = String(schemas.BadRequest?.description ?? response.description)
      }
    }
  }
  for (const unused of ["HttpApiDecodeError", "Issue", "PropertyKey"]) delete schemas[unused]
  for (const [name, schema] of Object.entries(schemas)) schema.title = name
  schemas.OrderName = {
    title: "OrderName",
    type: "string",
    description:
      "Trimmed, then 1-200 characters, with no control characters (U+0000-U+001F, U+007F-U+009F) nor unpaired surrogates",
    minLength: 1,
    maxLength: 200,
    pattern:
      "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
  }
  if (schemas.DateTimeUtc !== undefined) {
    schemas.DateTimeUtc = { title: "DateTimeUtc", type: "string", format: "date-time", description: "UTC, ISO 8601" }
  }
  return spec
}

export class OrdersApi extends HttpApi.make("OrdersApi")
  .add(OrdersGroup)
  .addError(Problems.BadRequest)
  .addError(Problems.Unauthorized)
  .addError(Problems.RouteNotFound)
  .addError(Problems.MethodNotAllowed)
  .addError(Problems.PayloadTooLarge)
  .addError(Problems.InternalServerError)
  .addError(Problems.ServiceUnavailable)
  .annotate(OpenApi.Title, "Orders API")
  .annotate(OpenApi.Version, "0.3.1")
  .annotate(
    OpenApi.Description,
    [
      "Orders, event-sourced. Every error is an RFC 9457 problem document (`application/problem+json`) with `type`, `title`, `status`, `detail`, and the error's `_tag` and fields.",
      "`POST /` takes `application/json` only, at most 64 KiB; `POST /{id}` takes no body.",
      "Commands answer with the order and its version as `ETag`; `POST /{id}` honours `If-Match`; both honour `Idempotency-Key`."
    ].join("\n\n")
  )
  .annotate(OpenApi.Transform, completeDocument)
{}
