/**
 * The in-memory adapters, failing on purpose for some order ids, so that the
 * answers a healthy system never gives can be asked for: ids starting with
 * `down` find their backing server unavailable (503), with `unknown` their
 * append unconfirmed (503), with `bug` a defect (500).
 */
import * as EventBus from "@orders/domain/EventBus"
import * as EventStore from "@orders/domain/EventStore"
import { AppendOutcomeUnknown, ServiceUnavailable } from "@orders/domain/OrderError"
import * as OrderReadModel from "@orders/domain/OrderReadModel"
import { Effect, Layer } from "effect"

const fault = (id: string | undefined) =>
  id?.startsWith("down") ?
    Effect.fail(new ServiceUnavailable({ service: "test store", message: "the test store is down for this id" })) :
    id?.startsWith("bug") ?
    Effect.dieMessage("a deliberate defect") :
    Effect.void

export const FaultyAdaptersLive = Layer.mergeAll(
  Layer.effect(
    EventStore.EventStore,
    Effect.map(EventStore.makeMemory(), (store) => ({
      ...store,
      read: (streamId) => Effect.zipRight(fault(streamId), store.read(streamId)),
      readKnown: (streamId) => Effect.zipRight(fault(streamId), store.readKnown(streamId)),
      append: (streamId, expectedVersion, events) =>
        streamId.startsWith("unknown")
          ? Effect.fail(AppendOutcomeUnknown.of(streamId, "the test store lost the connection"))
          : store.append(streamId, expectedVersion, events)
    }))
  ),
  EventBus.layerMemory,
  Layer.effect(
    OrderReadModel.OrderReadModel,
    Effect.map(OrderReadModel.makeMemory, (readModel) => ({
      ...readModel,
      get: (id) => Effect.zipRight(fault(id), readModel.get(id)),
      list: (options) => Effect.zipRight(fault(options.after), readModel.list(options))
    }))
  )
)
