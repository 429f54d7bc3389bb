/**
 * What can be asked of an order.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { FailureReason, OrderId, OrderName } from "./Order.js"

export class CreateOrder extends Schema.TaggedClass<CreateOrder>()("CreateOrder", {
  orderId: OrderId,
  name: OrderName
}) {}

export class RequestProcessing extends Schema.TaggedClass<RequestProcessing>()("RequestProcessing", {
  orderId: OrderId
}) {}

export class CompleteProcessing extends Schema.TaggedClass<CompleteProcessing>()("CompleteProcessing", {
  orderId: OrderId
}) {}

export class FailProcessing extends Schema.TaggedClass<FailProcessing>()("FailProcessing", {
  orderId: OrderId,
  reason: FailureReason
}) {}

export const OrderCommand = Schema.Union(CreateOrder, RequestProcessing, CompleteProcessing, FailProcessing)
export type OrderCommand = typeof OrderCommand.Type
