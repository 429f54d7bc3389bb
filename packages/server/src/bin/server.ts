/** The API, projector and outbox relay, against MongoDB, PostgreSQL and Kafka (`pnpm start:server`). */
import * as EventBusKafka from "@orders/infra/EventBusKafka"
import * as EventStoreMongo from "@orders/infra/EventStoreMongo"
import * as OrderReadModelPg from "@orders/infra/OrderReadModelPg"
import { runProgram } from "@orders/infra/Program"
import { Layer } from "effect"
import { ServerLive } from "../Server.js"

runProgram(ServerLive.pipe(
  Layer.provide(Layer.mergeAll(EventStoreMongo.layerConfig, OrderReadModelPg.layerConfig, EventBusKafka.layerConfig))
))
