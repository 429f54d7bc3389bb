/**
 * The recorded corpus (see `record.ts`): per version folder, per stream, the
 * commit documents exactly as that version stored them.
 */
import { BSON } from "mongodb"
import { readdirSync, readFileSync } from "node:fs"
import type { CommitDocument } from "../../src/EventStoreMongo.js"

const root = new URL("./", import.meta.url)

/** The recorded versions, oldest first: `v1`, `v2`, … */
export const corpusVersions: ReadonlyArray<string> = readdirSync(root, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && /^v[1-9][0-9]*$/.test(entry.name))
  .map((entry) => entry.name)
  .sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)))

/** The streams of a version, by file name (`failed`, …). */
export const corpusStreams = (version: string): ReadonlyArray<string> =>
  readdirSync(new URL(`${version}/`, root)).filter((file) => file.endsWith(".json")).map((file) =>
    file.slice(0, -".json".length)
  ).sort()

/** A stream's commits as stored: BSON values (`Int32`…), for an insert that stores them again unchanged. */
export const storedCommits = (version: string, stream: string): ReadonlyArray<BSON.Document> =>
  BSON.EJSON.parse(readFileSync(new URL(`${version}/${stream}.json`, root), "utf8"), { relaxed: false })

/** A stream's commits as the driver hands them to the adapter: stored, then read with the driver's defaults. */
export const readCommits = (version: string, stream: string): ReadonlyArray<CommitDocument> =>
  storedCommits(version, stream).map((commit) => BSON.deserialize(BSON.serialize(commit)) as CommitDocument)
