import Collectors
import OScam
import Pipeline
import Platform
import Testing
import TestSupport

/// Golden output of each collector over the fixture tree.
@Suite struct CollectorGoldenTests {
    static let deadline = ContinuousClock().now.advanced(by: .seconds(30))
    static let statusBody = """
        {"oscam":{"version":"2.26.05-11961","revision":"","commit":"5b6fa7ad","starttime":"2026-11-29T09:47:09+0000",
        "readonly":"1","client":[{"name":"alice","connection":{"ip":"192.0.2.44"}}]}}
        """

    static func collectors() -> [(String, any Collector<CollectContext>)] {
        [("resources", ResourcesCollector(firstInterval: .milliseconds(1))), ("instances", InstancesCollector()),
         ("accounts", AccountsCollector()), ("readers", ReadersCollector()), ("webif", WebIfCollector()),
         ("runtime", RuntimeCollector())]
    }

    @Test(arguments: ["resources", "instances", "accounts", "readers", "webif", "runtime"])
    func golden(_ name: String) throws {
        let collector = try #require(Self.collectors().first { $0.0 == name }?.1)
        let http = CannedTransport(status: 200, body: Self.statusBody)
        let context = Fixture.context([Fixture.instance("oscam"), Fixture.instance("broken", running: false)], http: http)
        let contribution = try collector.collect(context, deadline: Self.deadline)
        assertGolden(Fixture.render(contribution), path: testdataDirectory() + "/golden/\(name).json")
    }

    @Test func webifCallsOnlyTheStatusAPIOverLoopbackWithDigest() throws {
        let http = CannedTransport(status: 200, body: Self.statusBody)
        let context = Fixture.context([Fixture.instance("oscam")], http: http)
        let contribution = try WebIfCollector().collect(context, deadline: Self.deadline)
        #expect(http.urls == ["https://127.0.0.1:18443/oscamapi.json?part=status"])
        #expect(http.digestUsers == ["fixture-web-login"])
        let webif = try #require(contribution.instances.values.first?.webif)
        #expect(webif.state == "ok" && webif.reachable && webif.readonly == true)
        #expect(webif.version == "2.26.05-11961@5b6fa7ad")
        let text = String(decoding: Snapshot.with(contribution).json.encoded(), as: UTF8.self)
        #expect(!text.contains("192.0.2.44"), "client addresses from the status body must never be reported")
    }

    @Test(arguments: [(401, "unauthorized"), (403, "forbidden"), (500, "http_error"), (200, "bad_response")])
    func webifStatesByHTTPStatus(_ status: Int, _ state: String) throws {
        let http = CannedTransport(status: status, body: status == 200 ? "not json" : "Access denied.")
        let contribution = try WebIfCollector().collect(Fixture.context([Fixture.instance("oscam")], http: http),
                                                        deadline: Self.deadline)
        let webif = try #require(contribution.instances.values.first?.webif)
        #expect(webif.state == state && !webif.reachable && webif.httpStatus == status)
    }

    @Test func hostCollectorReadsTheMachine() throws {
        let contribution = try HostCollector().collect(Fixture.context([]), deadline: Self.deadline)
        let host = try #require(contribution.host)
        #expect(!host.hostname.isEmpty && !host.kernel.isEmpty && !host.arch.isEmpty && host.cpuCount >= 1)
        #expect(host.osID == "debian" && host.osVersion == "12")
        #expect(host.bootTime == 1_795_900_000)
    }

    @Test func runtimeCPUIsTheDeltaBetweenCycles() throws {
        let collector = RuntimeCollector()
        let context = Fixture.context([Fixture.instance("oscam")])
        _ = try collector.collect(context, deadline: Self.deadline)
        let second = try collector.collect(context, deadline: Self.deadline)
        // The fixture's counters did not move between the two cycles: 0 %, not the lifetime average.
        #expect(second.instances.values.first?.runtime?.cpuPercent == 0)
    }
}

extension Snapshot {
    static func with(_ contribution: Contribution) -> Snapshot {
        var snapshot = Snapshot(seq: 1, collectedAt: 0, agentVersion: "test")
        snapshot.instances = Array(contribution.instances.values)
        return snapshot
    }
}
