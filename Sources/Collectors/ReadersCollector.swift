import OScam
import Pipeline

/// `readers`: every reader of each instance's oscam.server through the typed view (label,
/// protocol, enabled, groups, CAIDs, idents, device kind); never credentials, keys, the device
/// address or card data.
public struct ReadersCollector: Collector {
    public let name = "readers"
    public let needs: Set<Capability> = [.oscamFiles]

    public init() {}

    public func collect(_ context: CollectContext, deadline: ContinuousClock.Instant) throws(CollectorError) -> Contribution {
        var contribution = Contribution()
        for instance in context.discovery.instances {
            var report = InstanceReport(id: instance.id)
            guard let readers = context.analysis(.server, of: instance.id)?.readers else {
                continue
            }
            report.readers = readers.map { reader in
                ReaderInfo(label: reader.label, protocolName: reader.protocolName, enabled: reader.enabled,
                           groups: reader.groups, caids: reader.caids.map(\.text), idents: reader.idents.map(\.text),
                           deviceKind: reader.deviceKind.rawValue)
            }
            report.config = ConfigSummary(readerCount: readers.count)
            contribution.instances[instance.id] = report
        }
        return contribution
    }
}
