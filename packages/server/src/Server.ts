/**
 * The server program's parts: the HTTP API, the projector that feeds the read
 * model, and the outbox relay. Each port is left open, for main to provide.
 */
import { Layer } from "effect"
import { HttpLive } from "./Http.js"
import { OutboxRelayLive } from "./OutboxRelay.js"
import { ProjectorLive } from "./Projector.js"

export const ServerLive = Layer.mergeAll(HttpLive, ProjectorLive, OutboxRelayLive)
