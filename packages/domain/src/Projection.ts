/**
 * How one event changes an order's read-model row. Pure.
 *
 * @since 0.1.0
 */
import { Data } from "effect"
import type { Order } from "./Order.js"
import { evolve, fromOrder, toOrder } from "./Order.js"
import type { OrderEventEnvelope } from "./OrderEvent.js"

export type ProjectionStep = Data.TaggedEnum<{
  /** The row after the event. */
  Applied: { readonly order: Order }
  /** The row already includes this event (a redelivery or a replay). */
  AlreadyApplied: {}
  /** Events between the row and this one are missing: catch up from the event store. */
  Gap: { readonly lastVersion: number }
}>
export const ProjectionStep = Data.taggedEnum<ProjectionStep>()

export const project = (row: Order | undefined, event: OrderEventEnvelope): ProjectionStep => {
  const lastVersion = row?.version ?? 0
  if (event.version <= lastVersion) return ProjectionStep.AlreadyApplied()
  if (event.version > lastVersion + 1) return ProjectionStep.Gap({ lastVersion })
  const order = toOrder(evolve(fromOrder(row), event.data), event.version)
  // An event the state ignores (never produced by the decider) leaves the row as it is.
  return order === undefined ? ProjectionStep.AlreadyApplied() : ProjectionStep.Applied({ order })
}

/** Folds a run of events, in version order, into the row. */
export const projectAll = (row: Order | undefined, events: Iterable<OrderEventEnvelope>): Order | undefined => {
  let current = row
  for (const event of events) {
    const step = project(current, event)
    if (step._tag === "Applied") current = step.order
  }
  return current
}
