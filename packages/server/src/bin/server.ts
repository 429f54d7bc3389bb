/** The API, projector and outbox relay, against MongoDB, PostgreSQL and Kafka (`pnpm start:server`). */
import { defaultGrace, EventStore } from "@orders/domain/EventStore"
import * as EventBusKafka from "@orders/infra/EventBusKafka"
import * as EventStoreMongo from "@orders/infra/EventStoreMongo"
import * as OrderReadModelPg from "@orders/infra/OrderReadModelPg"
import { runProgram } from "@orders/infra/Program"
import { Config, Context, Effect, Layer } from "effect"
import { OutboxBacklog } from "../OutboxRelay.js"
import { ServerLive } from "../Server.js"

/**
 * The event store on MongoDB, which also tells its outbox backlog; configured
 * as `EventStoreMongo.layerConfig` is (`MONGODB_URI`, `OUTBOX_RELAY_GRACE`).
 */
const optionsConfig = Config.all({
  connection: EventStoreMongo.connectionConfig,
  grace: Config.duration("OUTBOX_RELAY_GRACE").pipe(Config.withDefault(defaultGrace))
})

const EventStoreLive = Layer.unwrapEffect(Effect.map(optionsConfig, ({ connection, grace }) =>
  Layer.scopedContext(
    Effect.map(EventStoreMongo.make({ ...connection, grace }), (store) =>
      Context.make(EventStore, store).pipe(Context.add(OutboxBacklog, store)))
  )))

runProgram(
  "orders-server",
  ServerLive.pipe(
    Layer.provide(Layer.mergeAll(EventStoreLive, OrderReadModelPg.layerConfig, EventBusKafka.layerConfig))
  )
)
