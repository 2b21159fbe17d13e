@testable import OScam

// The collectors' fast reading of oscam.user and oscam.server (RecordScan, behind
// `FileAnalysis(scanning:)`) against the document model it stands in for: for any bytes, read as
// either file, both must find the same accounts, readers, secrets and problems. A disagreement
// is a payload the panel would see differently from what the files say, or a secret the
// redaction filter would not know of. FastReadingTests checks the same on fixtures and on
// generated files; this searches the bytes nobody thought to generate.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRecordScan(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzerBytes(data, size)
    for file in [OScamFile.user, .server] {
        let document = ConfigDocument(bytes: bytes, file: file, path: file.rawValue)
        let scanned = FileAnalysis(scanning: bytes, file: file, path: file.rawValue)
        // Field by field first, so that a finding says where the two readings part.
        require(scanned.problems == document.allProblems(),
                "\(file.rawValue): problems differ: \(scanned.problems) vs \(document.allProblems())")
        require(scanned.secrets == document.secretValues(), "\(file.rawValue): secrets differ")
        if file == .user {
            let accounts = document.accounts().value.map(AccountSummary.init)
            require(scanned.accounts == accounts, "oscam.user: accounts differ: \(String(describing: scanned.accounts)) vs \(accounts)")
        } else {
            let readers = document.readers().value
            require(scanned.readers == readers, "oscam.server: readers differ: \(String(describing: scanned.readers)) vs \(readers)")
        }
        require(scanned == document.analyze(), "\(file.rawValue): the analyses differ")
    }
    return 0
}
