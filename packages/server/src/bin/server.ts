/** The API, projector and outbox relay, against MongoDB, PostgreSQL and Kafka (`pnpm start:server`). */
import { EventStore } from "@orders/domain/EventStore"
import * as EventBusKafka from "@orders/infra/EventBusKafka"
import * as EventStoreMongo from "@orders/infra/EventStoreMongo"
import * as OrderReadModelPg from "@orders/infra/OrderReadModelPg"
import { runProgram } from "@orders/infra/Program"
import { Context, Effect, Layer } from "effect"
import { OutboxBacklog } from "../OutboxRelay.js"
import { ServerLive } from "../Server.js"

/** The event store on MongoDB, which also tells its outbox backlog; configured as `EventStoreMongo.layerConfig` is. */
const EventStoreLive = Layer.unwrapEffect(Effect.map(EventStoreMongo.optionsConfig, (options) =>
  Layer.scopedContext(
    Effect.map(EventStoreMongo.make(options), (store) =>
      Context.make(EventStore, store).pipe(Context.add(OutboxBacklog, store)))
  )))

runProgram(
  "orders-server",
  ServerLive.pipe(
    Layer.provide(Layer.mergeAll(EventStoreLive, OrderReadModelPg.layerConfig, EventBusKafka.layerConfig))
  )
)
