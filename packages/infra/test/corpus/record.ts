/**
 * Records the corpus of stored events: what THIS version of the code writes
 * to MongoDB, kept as test data so that every later version must still read it.
 *
 * Run it after every change to an event, once the change is made, to add the
 * new version's documents (a recorded version's folder is never rewritten):
 *
 *   npx tsx packages/infra/test/corpus/record.ts v3
 *
 * It drives the real command handler and `EventStoreMongo` through every
 * event type (and a retry after a failure, an idempotency key, a trace
 * context, an order left processing) into a fresh database of `MONGODB_URI`
 * (default: the local stack), dumps each stream's commit documents as
 * canonical Extended JSON into `<version>/<stream>.json`, and drops the
 * database. Commands that change shape with an event change here too; the
 * streams stay the same, so that `StoredEventCorpus.test.ts` can expect the
 * same orders from every version.
 *
 * v1 was recorded by commit f0fd08c (before schema versions), running this
 * script with the reasons of its `FailProcessing` commands as plain strings.
 */
import { CommandHandler } from "@orders/domain/CommandHandler"
import * as EventBus from "@orders/domain/EventBus"
import type { FailureReason } from "@orders/domain/Order"
import { OrderId } from "@orders/domain/Order"
import { CompleteProcessing, CreateOrder, FailProcessing, RequestProcessing } from "@orders/domain/OrderCommand"
import type { OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { EventMetadata } from "@orders/domain/OrderEvent"
import { Effect, Layer } from "effect"
import { BSON, MongoClient } from "mongodb"
import { existsSync, mkdirSync, writeFileSync } from "node:fs"
import * as EventStoreMongo from "../../src/EventStoreMongo.js"
import type { CommitDocument } from "../../src/EventStoreMongo.js"
import { COMMITS } from "../../src/EventStoreMongo.js"

/** The streams of every version's corpus, by file name. */
const corpusStreams = {
  processed: OrderId.make("corpus-processed"),
  failed: OrderId.make("corpus-failed"),
  retried: OrderId.make("corpus-retried"),
  /** Left processing: a later version can append to it. */
  processing: OrderId.make("corpus-processing")
} as const

const version = process.argv[2]
if (version === undefined || !/^v[1-9][0-9]*$/.test(version)) {
  throw new Error("usage: record.ts v<N> (the folder of this version's documents)")
}
const folder = new URL(`./${version}/`, import.meta.url)
if (existsSync(folder)) throw new Error(`${folder.pathname} exists: a recorded version is never rewritten`)

const request = (id: string) => EventMetadata.make({ correlationId: `corpus-${id}`, causationId: `corpus-${id}` })

/** What the API and the processor would do to each stream. */
const drive = Effect.gen(function*() {
  const commands = yield* CommandHandler
  const create = (orderId: OrderId, name: string) =>
    commands.handle(CreateOrder.make({ orderId, name }), request(`create-${orderId}`))
  const requestProcessing = (orderId: OrderId) =>
    commands.handle(RequestProcessing.make({ orderId }), request(`process-${orderId}`)).pipe(
      Effect.map(({ events }) => events[0])
    )
  const failProcessing = (orderId: OrderId, reason: FailureReason, cause: OrderEventEnvelope) =>
    commands.handleCausedBy(FailProcessing.make({ orderId, reason }), cause)

  yield* create(corpusStreams.processed, "Corpus order: processed")
  const processing = yield* requestProcessing(corpusStreams.processed)
  yield* commands.handleCausedBy(CompleteProcessing.make({ orderId: corpusStreams.processed }), processing)

  // A keyed request (idempotency key and request hash in the metadata) with a trace context, and a name beyond ASCII.
  yield* commands.handle(
    CreateOrder.make({ orderId: corpusStreams.failed, name: "Corpus order: failed ✗ — café" }),
    EventMetadata.make({ ...request(`create-${corpusStreams.failed}`), idempotencyKey: "corpus-key-1" })
  ).pipe(Effect.withSpan("corpus"), Effect.provideService(EventBus.TraceContextPropagation, true))
  const failing = yield* requestProcessing(corpusStreams.failed)
  yield* failProcessing(
    corpusStreams.failed,
    { code: "payment_declined", message: "payment declined by the card issuer" },
    failing
  )

  yield* create(corpusStreams.retried, "Corpus order: failed, then retried")
  const first = yield* requestProcessing(corpusStreams.retried)
  yield* failProcessing(
    corpusStreams.retried,
    { code: "warehouse_unreachable", message: "warehouse unreachable" },
    first
  )
  const retry = yield* requestProcessing(corpusStreams.retried)
  yield* commands.handleCausedBy(CompleteProcessing.make({ orderId: corpusStreams.retried }), retry)

  yield* create(corpusStreams.processing, "Corpus order: processing")
  yield* requestProcessing(corpusStreams.processing)
})

const withClient = <A>(run: (client: MongoClient) => Promise<A>, uri: string) =>
  Effect.promise(async () => {
    const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5_000 })
    try {
      return await run(client)
    } finally {
      await client.close()
    }
  })

const program = Effect.gen(function*() {
  const { uri } = yield* EventStoreMongo.connectionConfig
  const database = `orders_corpus_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`
  yield* Effect.addFinalizer(() => withClient((client) => client.db(database).dropDatabase(), uri))
  yield* drive.pipe(
    Effect.provide(CommandHandler.Default.pipe(
      Layer.provide(Layer.merge(EventStoreMongo.layer({ uri, database }), EventBus.layerMemory))
    ))
  )
  const commits = yield* withClient(
    (client) =>
      client.db(database).collection<CommitDocument>(COMMITS).find().sort({ streamId: 1, previous: 1 }).toArray(),
    uri
  )
  mkdirSync(folder)
  for (const [file, streamId] of Object.entries(corpusStreams)) {
    const documents = commits.filter((commit) => commit.streamId === streamId)
    writeFileSync(
      new URL(`${file}.json`, folder),
      `${BSON.EJSON.stringify(documents, undefined, 2, { relaxed: false })}\n`
    )
    yield* Effect.logInfo(`${version}/${file}.json: ${documents.length} commits`)
  }
})

Effect.runPromise(program.pipe(Effect.scoped, Effect.timeout("60 seconds"))).catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
