/**
 * The Orders HTTP API as data: endpoints, payloads, responses and errors. The
 * server implements it, the OpenAPI document is derived from it, and another
 * program can derive a typed client from it (`HttpApiClient.make(OrdersApi)`).
 * It imports nothing server-only.
 */
import { HttpApi, HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Order } from "@orders/domain/Order"
import { OrderId, OrderName } from "@orders/domain/Order"
import {
  AppendOutcomeUnknown,
  ConcurrencyConflict,
  InvalidOrderTransition,
  OrderAlreadyExists,
  OrderNotFound,
  ServiceUnavailable
} from "@orders/domain/OrderError"
import { Schema } from "effect"

/** Report every invalid field at once, not just the first. */
const reportAllErrors = { parseOptions: { errors: "all" as const } }

/** Largest request body the API reads: an order is a few hundred bytes. */
export const MaxBodyBytes = 64 * 1024

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  message: Schema.String
}) {}

export const CreateOrderRequest = Schema.Struct({
  id: OrderId,
  name: OrderName,
  /** Kept for the original API's clients: an order always starts as "new". */
  status: Schema.optional(Schema.Literal("new"))
}).annotations({ identifier: "CreateOrderRequest", ...reportAllErrors })

export const OrderPath = Schema.Struct({ id: OrderId }).annotations(reportAllErrors)

export const MaxPageSize = 1000

export const ListOrdersParams = Schema.Struct({
  limit: Schema.optional(
    Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, MaxPageSize)).annotations({
      description: `Page size, 1-${MaxPageSize} (default ${MaxPageSize})`
    })
  ),
  // An id, not any string: the cursor reaches PostgreSQL, which refuses a NUL.
  after: Schema.optional(OrderId.annotations({ description: "Return orders whose id sorts after this one" }))
}).annotations(reportAllErrors)

export class OrdersGroup extends HttpApiGroup.make("orders")
  .add(
    HttpApiEndpoint.post("create", "/")
      .setPayload(CreateOrderRequest)
      .addSuccess(Order, { status: 201 })
      .addError(OrderAlreadyExists, { status: 409 })
      .addError(ConcurrencyConflict, { status: 409 })
      .addError(AppendOutcomeUnknown, { status: 503 })
      .annotate(OpenApi.Summary, "Create an order")
  )
  .add(
    HttpApiEndpoint.post("process", "/:id")
      .setPath(OrderPath)
      .addSuccess(Order, { status: 202 })
      .addError(OrderNotFound, { status: 404 })
      .addError(InvalidOrderTransition, { status: 409 })
      .addError(ConcurrencyConflict, { status: 409 })
      .addError(AppendOutcomeUnknown, { status: 503 })
      .annotate(OpenApi.Summary, "Request processing of an order")
      .annotate(
        OpenApi.Description,
        "Accepted: the order is now processing; the processor records the outcome shortly after."
      )
  )
  .add(
    HttpApiEndpoint.get("list", "/")
      .setUrlParams(ListOrdersParams)
      .addSuccess(Schema.Array(Order))
      .annotate(OpenApi.Summary, "List orders, sorted by id (read model: eventually consistent)")
  )
  .add(
    HttpApiEndpoint.get("get", "/:id")
      .setPath(OrderPath)
      .addSuccess(Order)
      .addError(OrderNotFound, { status: 404 })
      .annotate(OpenApi.Summary, "Get an order (read model: eventually consistent)")
  )
  .addError(ServiceUnavailable, { status: 503 })
{}

export class OrdersApi extends HttpApi.make("OrdersApi")
  .add(OrdersGroup)
  .addError(PayloadTooLarge, { status: 413 })
  .annotate(OpenApi.Title, "Orders API")
  .annotate(OpenApi.Version, "0.1.0")
{}
