/**
 * How a MongoDB-protocol server's lookups and inserts scale with the event
 * store's size: commits in the store's shape are added up to 10k, 50k and
 * 100k, and at each size `findOne` by `_id` (the oldest rows, the newest,
 * and misses, 20 each) and `insertOne` (one at a time, and 32 writers) are
 * timed. It chose FerretDB's backend for deploy/native (see the README).
 *
 *   npx tsx bench/mongoLookups.ts [mongodb://127.0.0.1:27017/]
 *
 * Works in, then drops, the database `bench_lookups`.
 */
import { MongoClient } from "mongodb"

interface Commit {
  readonly _id: string
  readonly streamId: string
  readonly previous: number
  readonly version: number
  readonly events: ReadonlyArray<unknown>
}

const uri = process.argv[2] ?? "mongodb://127.0.0.1:27017/"
const client = await new MongoClient(uri).connect()
const db = client.db("bench_lookups")
const commits = db.collection<Commit>("commits")
await db.dropDatabase()

const commit = (i: number): Commit => ({
  _id: `o-${i}:0`,
  streamId: `o-${i}`,
  previous: 0,
  version: 1,
  events: [{
    eventId: "e",
    streamId: `o-${i}`,
    version: 1,
    type: "OrderCreated",
    occurredAt: "2026-11-27T00:00:00.000Z",
    metadata: { correlationId: "c", causationId: "c" },
    data: { _tag: "OrderCreated", orderId: `o-${i}`, name: "an order" }
  }]
})

/** Milliseconds per call, over `times` calls one after the other. */
const each = async (times: number, call: (i: number) => Promise<unknown>) => {
  const start = performance.now()
  for (let i = 0; i < times; i++) await call(i)
  return (performance.now() - start) / times
}

let stored = 0
let extra = 10_000_000
for (const size of [10_000, 50_000, 100_000]) {
  for (; stored < size; stored += 1000) {
    await commits.insertMany(Array.from({ length: 1000 }, (_, k) => commit(stored + k)), { ordered: false })
  }
  const oldest = await each(20, (i) => commits.findOne({ _id: `o-${i * 7}:0` }))
  const newest = await each(20, (i) => commits.findOne({ _id: `o-${size - 1 - i * 7}:0` }))
  const miss = await each(20, (i) => commits.findOne({ _id: `o-${i}:1` }))
  const single = await each(100, () => commits.insertOne(commit(extra++)))
  const start = performance.now()
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      for (let k = 0; k < 20; k++) await commits.insertOne(commit(extra++))
    })
  )
  const concurrent = 640 / ((performance.now() - start) / 1000)
  console.log(
    `${size} commits: findOne oldest ${oldest.toFixed(1)} ms, newest ${newest.toFixed(1)} ms, miss ${
      miss.toFixed(1)
    } ms; insertOne ${single.toFixed(2)} ms alone, ${concurrent.toFixed(0)}/s at 32 writers`
  )
}
await db.dropDatabase()
await client.close()
