/**
 * The Orders API's handlers: commands go to the command handler, queries to
 * the read model only.
 */
import { HttpApiBuilder, HttpServerRequest } from "@effect/platform"
import { CommandHandler } from "@orders/domain/CommandHandler"
import { CreateOrder, RequestProcessing } from "@orders/domain/OrderCommand"
import { OrderNotFound } from "@orders/domain/OrderError"
import { EventMetadata } from "@orders/domain/OrderEvent"
import { OrderReadModel } from "@orders/domain/OrderReadModel"
import { trusted } from "@orders/domain/Trusted"
import { Effect, Option } from "effect"
import { MaxPageSize, OrdersApi } from "./OrdersApi.js"

/** The request's correlation id (from `x-correlation-id` when a caller sets one) starts the causal chain. */
const requestMetadata = Effect.map(HttpServerRequest.HttpServerRequest, (request) => {
  const correlationId = request.headers["x-correlation-id"]?.slice(0, 200) || crypto.randomUUID()
  return EventMetadata.make({ correlationId, causationId: correlationId }, trusted)
})

export const OrdersHandlers = HttpApiBuilder.group(OrdersApi, "orders", (handlers) =>
  Effect.gen(function*() {
    const commands = yield* CommandHandler
    const readModel = yield* OrderReadModel
    return handlers
      .handle("create", ({ payload }) =>
        requestMetadata.pipe(
          Effect.flatMap((metadata) =>
            commands.handle(CreateOrder.make({ orderId: payload.id, name: payload.name }, trusted), metadata)
          ),
          Effect.map(({ order }) => order)
        ))
      .handle("process", ({ path }) =>
        requestMetadata.pipe(
          Effect.flatMap((metadata) =>
            commands.handle(RequestProcessing.make({ orderId: path.id }, trusted), metadata)
          ),
          Effect.map(({ order }) => order)
        ))
      .handle(
        "list",
        ({ urlParams }) => readModel.list({ after: urlParams.after, limit: urlParams.limit ?? MaxPageSize })
      )
      .handle("get", ({ path }) =>
        readModel.get(path.id).pipe(
          Effect.flatMap(Option.match({
            onNone: () => Effect.fail(OrderNotFound.of(path.id)),
            onSome: Effect.succeed
          }))
        ))
  }))
