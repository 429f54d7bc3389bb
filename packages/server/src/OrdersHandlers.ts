/**
 * The Orders API's handlers: commands go to the command handler, queries to
 * the read model, history (`/:id/events`, `?at=`) to the event store.
 */
import { HttpApiBuilder, HttpApp, HttpServerResponse } from "@effect/platform"
import type { CommandOptions } from "@orders/domain/CommandHandler"
import { CommandHandler } from "@orders/domain/CommandHandler"
import { EventStore } from "@orders/domain/EventStore"
import type { OrderId } from "@orders/domain/Order"
import { fold, toOrder } from "@orders/domain/Order"
import type { Order } from "@orders/domain/Order"
import { CreateOrder, RequestProcessing } from "@orders/domain/OrderCommand"
import { OrderNotFound } from "@orders/domain/OrderError"
import { EventMetadata } from "@orders/domain/OrderEvent"
import { OrderReadModel } from "@orders/domain/OrderReadModel"
import { trusted } from "@orders/domain/Trusted"
import { Effect, FiberRef, Option } from "effect"
import { currentCorrelationId } from "./Correlation.js"
import {
  CreateOrderRequest,
  etag,
  ifMatchVersion,
  MaxPageSize,
  orderResponseJson,
  OrdersApi,
  OrderVersionNotFound
} from "./OrdersApi.js"
import { BodyTimeout, readJson, requireNoBody } from "./RequestBody.js"

/**
 * The request's correlation id (from `x-correlation-id` when a caller sets one)
 * starts the causal chain; its idempotency key, if any, goes with the events.
 */
const requestMetadata = (idempotencyKey: string | undefined) =>
  Effect.map(FiberRef.get(currentCorrelationId), (given) => {
    // Unset only outside the server's middleware (which always sets it).
    const correlationId = given ?? crypto.randomUUID()
    return EventMetadata.make(
      { correlationId, causationId: correlationId, ...(idempotencyKey === undefined ? {} : { idempotencyKey }) },
      trusted
    )
  })

/** Headers of a successful answer, added as it is sent (the handler returns the order, which the contract encodes). */
const answerWith = (headers: Record<string, string>) =>
  HttpApp.appendPreResponseHandler((_request, response) =>
    Effect.succeed(HttpServerResponse.setHeaders(response, headers))
  )

const withETag = (order: Order) => Effect.as(answerWith({ etag: etag(order.version) }), order)

export const OrdersHandlers = HttpApiBuilder.group(OrdersApi, "orders", (handlers) =>
  Effect.gen(function*() {
    const commands = yield* CommandHandler
    const readModel = yield* OrderReadModel
    const store = yield* EventStore
    const bodyTimeout = yield* BodyTimeout

    const history = (orderId: OrderId) =>
      Effect.filterOrFail(store.read(orderId), (events) => events.length > 0, () => OrderNotFound.of(orderId))

    /** The order as it was after `version`, folded from the event store. */
    const orderAt = (orderId: OrderId, version: number) =>
      Effect.gen(function*() {
        const events = yield* history(orderId)
        if (version > events.length) return yield* OrderVersionNotFound.of(orderId, version)
        const order = toOrder(fold(events.slice(0, version).map((event) => event.data)), version)
        return order ?? (yield* Effect.dieMessage(`order '${orderId}' folds to nothing at version ${version}`))
      })

    return handlers
      // Raw: the body is read here, bounded, and only as JSON; the builder would read any media type, unbounded.
      .handleRaw("create", ({ headers }) =>
        Effect.gen(function*() {
          const payload = yield* readJson(CreateOrderRequest, bodyTimeout)
          const metadata = yield* requestMetadata(headers["idempotency-key"])
          const { order } = yield* commands.handle(
            CreateOrder.make({ orderId: payload.id, name: payload.name }, trusted),
            metadata
          )
          yield* answerWith({ location: `/${order.id}` })
          return yield* withETag(order)
        }))
      .handle("process", ({ headers, path }) =>
        Effect.gen(function*() {
          yield* requireNoBody
          const metadata = yield* requestMetadata(headers["idempotency-key"])
          const expectedVersion = headers["if-match"] === undefined ? undefined : ifMatchVersion(headers["if-match"])
          const options: CommandOptions = expectedVersion === undefined ? {} : { expectedVersion }
          const { order } = yield* commands.handle(
            RequestProcessing.make({ orderId: path.id }, trusted),
            metadata,
            options
          )
          return yield* withETag(order)
        }))
      .handle(
        "list",
        ({ urlParams }) =>
          Effect.map(
            readModel.list({ after: urlParams.after, limit: urlParams.limit ?? MaxPageSize }),
            // Encoded here rather than by the endpoint's schema, which validated each order again.
            (orders) => HttpServerResponse.unsafeJson(orders.map(orderResponseJson))
          )
      )
      .handle("get", ({ path, urlParams }) =>
        (urlParams.at === undefined
          ? readModel.get(path.id).pipe(
            Effect.flatMap(Option.match({
              onNone: () => Effect.fail(OrderNotFound.of(path.id)),
              onSome: Effect.succeed
            }))
          )
          : orderAt(path.id, urlParams.at)).pipe(Effect.flatMap(withETag)))
      .handle("events", ({ path, urlParams }) =>
        history(path.id).pipe(
          Effect.map((events) => {
            const after = urlParams.after ?? 0
            return events.filter((event) => event.version > after).slice(0, urlParams.limit ?? MaxPageSize)
          })
        ))
  }))
