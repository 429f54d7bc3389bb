/**
 * The whole system in one process on in-memory adapters: API, projector,
 * relay and processor. What `pnpm start` runs, and what embedding programs
 * and tests compose.
 */
import * as EventBus from "@orders/domain/EventBus"
import * as EventStore from "@orders/domain/EventStore"
import * as OrderReadModel from "@orders/domain/OrderReadModel"
import { requireEventStore, requireReadModel } from "@orders/infra/Health"
import { ProcessorLive } from "@orders/processor"
import { Layer } from "effect"
import { OutboxRelayLive } from "./OutboxRelay.js"
import { ProjectorLive } from "./Projector.js"

export const MemoryAdaptersLive = Layer.mergeAll(
  EventStore.layerMemory,
  EventBus.layerMemory,
  OrderReadModel.layerMemory
)

/** Everything but the HTTP server, which the caller adds with its own listener. */
export const EmbeddedWorkersLive = Layer.mergeAll(
  ProjectorLive,
  OutboxRelayLive,
  ProcessorLive,
  requireEventStore,
  requireReadModel
)
