/**
 * `pnpm rebuild:read-model`: rebuilds the read model from the event store
 * while the system runs (blue/green), printing its progress in events per
 * second. Run again after a kill, it finishes what was started.
 */
import { EventStoreScan } from "@orders/infra/EventStoreScan"
import * as OrderReadModelPg from "@orders/infra/OrderReadModelPg"
import { commandFailed, runCommand } from "@orders/infra/Program"
import * as ReadModelRebuild from "@orders/infra/ReadModelRebuild"
import { Console, Effect, Layer } from "effect"

runCommand(
  ReadModelRebuild.rebuild({ onProgress: (progress) => Console.log(ReadModelRebuild.formatProgress(progress)) }).pipe(
    Effect.flatMap((summary) => Console.log(ReadModelRebuild.formatSummary(summary))),
    Effect.as(0),
    Effect.catchTag("RebuildInProgress", (error) => Console.error(error.message).pipe(Effect.as(commandFailed))),
    Effect.provide(Layer.merge(EventStoreScan.layerConfig, OrderReadModelPg.sqlLayerConfig))
  )
)
