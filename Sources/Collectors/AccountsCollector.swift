import OScam
import Pipeline

/// `accounts`: every account of each instance's oscam.user through the typed view (user,
/// enabled, groups, CAIDs, idents, expiry date); never `pwd` or `hostname`.
public struct AccountsCollector: Collector {
    public let name = "accounts"
    public let needs: Set<Capability> = [.oscamFiles]

    public init() {}

    public func collect(_ context: CollectContext, deadline: ContinuousClock.Instant) throws(CollectorError) -> Contribution {
        var contribution = Contribution()
        for instance in context.discovery.instances {
            var report = InstanceReport(id: instance.id)
            guard let accounts = context.analysis(.user, of: instance.id)?.accounts else {
                // Unreadable: the section stays absent (an empty list would claim "no accounts");
                // the instances collector reports why.
                continue
            }
            report.accounts = accounts.map { account in
                AccountInfo(user: account.user, enabled: account.enabled, groups: account.groups,
                            caids: account.caids, idents: account.idents, expdate: account.expdate)
            }
            report.config = ConfigSummary(accountCount: accounts.count)
            contribution.instances[instance.id] = report
        }
        return contribution
    }
}
