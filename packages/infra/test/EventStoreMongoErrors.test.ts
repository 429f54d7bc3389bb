import { describe, expect, it } from "@effect/vitest"
import { MongoNetworkError, MongoServerError } from "mongodb"
import { isUnavailable } from "../src/EventStoreMongo.js"

const socketError = (message: string, code: string) => Object.assign(new Error(message), { code })

describe("EventStoreMongo's failures", () => {
  it("takes a lost connection for 'not now', also when the driver lets Node's socket error through", () => {
    expect(isUnavailable(socketError("This socket has been ended by the other party", "EPIPE"))).toBe(true)
    expect(isUnavailable(socketError("read ECONNRESET", "ECONNRESET"))).toBe(true)
    expect(isUnavailable(new MongoNetworkError("connection closed"))).toBe(true)
  })

  it("takes anything else for a defect", () => {
    expect(isUnavailable(new Error("undefined is not a function"))).toBe(false)
    expect(isUnavailable(socketError("no such file", "ENOENT"))).toBe(false)
    expect(isUnavailable(new MongoServerError({ message: "bad document", code: 2 }))).toBe(false)
  })
})
