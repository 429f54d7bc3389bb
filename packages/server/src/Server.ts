/**
 * The server program's parts: the HTTP API, the projector that feeds the read
 * model, the outbox relay, and what its readiness requires. Each port is left
 * open, for main to provide.
 */
import { requireEventStore, requireReadModel } from "@orders/infra/Health"
import { Layer } from "effect"
import { HttpLive } from "./Http.js"
import { OutboxRelayLive } from "./OutboxRelay.js"
import { ProjectorLive } from "./Projector.js"

export const ServerLive = Layer.mergeAll(HttpLive, ProjectorLive, OutboxRelayLive, requireEventStore, requireReadModel)
