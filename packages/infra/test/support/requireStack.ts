/**
 * Global set-up of the integration tests: they need the real stack, and say
 * what to start when it is not there, instead of skipping.
 */
import { Socket } from "node:net"
import { databaseUrl, kafkaBrokers, mongoUri } from "./stack.js"

const targets = () => {
  const mongo = new URL(mongoUri)
  const postgres = new URL(databaseUrl)
  const [kafkaHost = "127.0.0.1", kafkaPort = "9092"] = kafkaBrokers[0]!.split(":")
  return [
    { service: "MongoDB (MONGODB_URI)", host: mongo.hostname, port: Number(mongo.port || 27017) },
    { service: "PostgreSQL (DATABASE_URL)", host: postgres.hostname, port: Number(postgres.port || 5432) },
    { service: "Kafka (KAFKA_BROKERS)", host: kafkaHost, port: Number(kafkaPort) }
  ]
}

const reachable = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = new Socket()
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(2_000)
    socket.once("connect", () => done(true))
    socket.once("timeout", () => done(false))
    socket.once("error", () => done(false))
    socket.connect(port, host)
  })

export default async function requireStack() {
  const missing: Array<string> = []
  for (const target of targets()) {
    if (!(await reachable(target.host, target.port))) missing.push(`${target.service} at ${target.host}:${target.port}`)
  }
  if (missing.length > 0) {
    throw new Error(
      `The integration tests need the real stack, and nothing answers for: ${missing.join(", ")}.\n` +
        "Start it with `deploy/native/up.sh` (no Docker) or `docker compose -f deploy/docker-compose.yml up -d`, " +
        "or point MONGODB_URI, DATABASE_URL and KAFKA_BROKERS at running servers."
    )
  }
}
