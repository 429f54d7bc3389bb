/**
 * `pnpm check:consistency [--json] [--settle <duration>] [--stuck-after <duration>]`:
 * compares the event store, the read model and the bus of a running system.
 * Exits 0 when they agree, 1 when something is wrong, 2 when it cannot check.
 */
import * as ConsistencyCheck from "@orders/infra/ConsistencyCheck"
import { topicConfig } from "@orders/infra/EventBusKafka"
import { EventStoreScan } from "@orders/infra/EventStoreScan"
import { KafkaAdmin } from "@orders/infra/KafkaAdmin"
import * as OrderReadModelPg from "@orders/infra/OrderReadModelPg"
import { commandFailed, runCommand } from "@orders/infra/Program"
import { ProcessorGroup } from "@orders/processor"
import { Console, Effect, Either, Layer } from "effect"
import { ProjectorGroup } from "../Projector.js"

runCommand(
  Either.match(ConsistencyCheck.parseCommandLine(process.argv.slice(2)), {
    onLeft: (problem) => Console.error(`${problem}\n${ConsistencyCheck.usage}`).pipe(Effect.as(commandFailed)),
    onRight: ({ json, settle, stuckAfter }) =>
      Effect.gen(function*() {
        const report = yield* ConsistencyCheck.check({
          topic: yield* topicConfig,
          groups: [yield* ProjectorGroup, yield* ProcessorGroup],
          settle,
          stuckAfter
        })
        yield* Console.log(json ? JSON.stringify(report, null, 2) : ConsistencyCheck.render(report))
        return ConsistencyCheck.exitCode(report)
      }).pipe(
        Effect.provide(
          Layer.mergeAll(EventStoreScan.layerConfig, KafkaAdmin.layerConfig, OrderReadModelPg.sqlLayerConfig)
        )
      )
  })
)
