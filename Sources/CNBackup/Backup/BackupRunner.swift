// CNBackup: the domain, on top of CNBackupCore, CNBackupHTTP and CNBackupStorage. Catalog,
// pipeline definitions, captures, the runner, verify, restore, recover, retention, metrics and
// copy: Canton's rules live here. It never touches signals, the terminal or process-wide
// settings: those belong to the executable (cnbackup-cli).
import Foundation
import Logging
import CNBackupCore
import CNBackupHTTP
import CNBackupStorage
import CNBackupPostgres
import CNBackupCatalog

public let cnbackupVersion = "0.3.0"

/// The outcome of one run.
public struct RunResult: Sendable {
    public let setId: String
    public let layout: SetLayout
    public let manifest: Manifest
    public var isComplete: Bool { manifest.status == .complete }
}

/// Definition -> plan -> typed stages per capture -> signed manifest, written last.
///
/// Order comes from roles, not from places in the file: every apps capture must finish before
/// any participant capture starts (docs/CANTON.md, "The apps barrier"); the others run beside them, at most
/// `parallelism` at a time. A failed capture does not throw the others away: the set is committed
/// with status `partial`, naming what failed.
public struct BackupRunner: Sendable {
    public let definition: PipelineDefinition
    public let store: any ObjectStore
    public let logger: Logger
    /// When the artefacts were originally taken (`cnbackup upload --captured-at`); nil means now.
    public let capturedAt: Date?
    /// Stops the run's captures (their children's process groups get SIGTERM, their streams end);
    /// the run then commits what completed as a signed partial set.
    public let cancellation: Cancellation

    public init(definition: PipelineDefinition, store: any ObjectStore, logger: Logger, capturedAt: Date? = nil,
                cancellation: Cancellation = Cancellation()) {
        self.definition = definition; self.store = store; self.logger = logger; self.capturedAt = capturedAt
        self.cancellation = cancellation
    }

    /// An apps capture that fails is taken once more before the barrier (a dropped connection to
    /// the apps database should not cost the whole set its participant).
    static let appsRetry = RetryPolicy(maxAttempts: 2, baseDelay: 1, maxDelay: 1)

    /// What the run will do: `--dry-run` prints it, `run()` executes it.
    public var plan: BackupPlan { BackupPlan(definition) }

    /// The plan of a definition, without a store (`run --dry-run` needs no storage credentials).
    public static func plan(for definition: PipelineDefinition) -> BackupPlan { BackupPlan(definition) }

    public func run() throws -> RunResult {
        try definition.checkDatabaseEpochs()
        try ScanEpoch.check(definition, logger: logger)
        let recipients = try loadRecipients()
        let signingKey = try KeyFile.loadSigningKey(path: definition.signingKeyFile)
        let start = capturedAt ?? Date()
        let setId = try SetLayout.newSetId(start: start)
        let layout = SetLayout(node: definition.node.name, epoch: definition.epoch, setId: setId)
        var log = logger
        log[metadataKey: "set"] = "\(setId)"
        log.info("backup started", metadata: ["node": "\(definition.node.name)", "epoch": "\(definition.epoch)", "store": "\(store.displayName)"])

        let recorder = EventRecorder()
        // Incrementals need earlier sets, trusted only when signed by this node's own key.
        let wantsChains = definition.captures.contains { if case .postgres(let pg) = $0.source { return pg.incremental != nil } else { return false } }
        let chains = wantsChains ? IncrementalChains(store: store, node: definition.node.name, signer: signingKey.publicKey, now: start) : nil
        let context = CaptureContext(cancellation: cancellation, chains: chains, epoch: definition.epoch)
        let plan = self.plan
        let jobs = plan.jobs
        let dedup = try definition.dedup.map { settings -> DedupRun in
            let secret = try KeyFile.loadDedupSecret(path: settings.keyFile)
            let reuse = ChunkReuse.load(store: store, node: definition.node.name, signer: signingKey.publicKey,
                                        components: jobs.filter(\.dedup).map(\.name), dedupKeyId: secret.keyID,
                                        recipients: recipients.map(\.keyID), start: start, grace: settings.graceSeconds,
                                        lockDays: definition.store.objectLock?.days)
            for problem in reuse.problems { log.warning("dedup: \(problem)") }
            return DedupRun(secret: secret, reuse: reuse, grace: settings.graceSeconds, start: start)
        }
        let results = ResultCollector()
        let scheduler = Scheduler(limit: definition.parallelism)
        let appsDone = DispatchGroup()
        // Under `order: canton`, every participant and mediator capture.
        let beforeSequencerDone = DispatchGroup()
        let beforeSequencer = Set(plan.afterParticipant.isEmpty ? [] : plan.beforeSequencerComponents)
        let everything = DispatchGroup()

        func launch(_ job: ComponentJob, after barrier: DispatchGroup?) {
            everything.enter()
            if job.role == .apps { appsDone.enter() }
            if beforeSequencer.contains(job.name) { beforeSequencerDone.enter() }
            let work = UncheckedBox((self, job, layout, recipients, log, signingKey, dedup))
            Thread.detachNewThread {
                let (runner, job, layout, recipients, log, signingKey, dedup) = work.value
                barrier?.wait()
                scheduler.acquire()
                // An apps capture may be retried (`appsRetry`): the barrier has not been passed while it runs.
                // A part of a parallel dump is not retried: a worker that dies fails its database's dump.
                let policy = job.role == .apps && job.part == nil ? BackupRunner.appsRetry : RetryPolicy(maxAttempts: 1, baseDelay: 0, maxDelay: 0)
                let outcome = Result<ComponentRecord, Error> {
                    try policy.run { attempt, _ in
                        if attempt > 1 { log.warning("retrying apps capture before the barrier", metadata: ["component": "\(job.name)"]) }
                        switch runner.captureComponent(job, layout: layout, recipients: recipients, start: start,
                                                       recorder: recorder, context: context, dedup: dedup, logger: log) {
                        case .success(let record): return .success(record)
                        case .failure(let error): return .retry(error)
                        }
                    }
                }.mapError { ($0 as? CNBackupError) ?? CNBackupError(.capture, "\($0)") }
                scheduler.release()
                // The journal vouches for the object should the run die before its manifest; a
                // journal that cannot be written costs only that (recover then leaves the object out).
                if case .success(let record) = outcome {
                    do { try JournalEntry.write(JournalEntry(layout: layout, record: record), layout: layout, store: runner.store, key: signingKey) } catch {
                        log.warning("cannot write the journal entry", metadata: ["component": "\(job.name)", "error": "\(Redaction.redact("\(error)"))"])
                    }
                }
                if let part = job.part {
                    // The last part of a parallel dump releases its snapshot; a failed one stops the parts not yet started.
                    if case .failure = outcome { context.parallelDumps.finished(part, ok: false) } else { context.parallelDumps.finished(part, ok: true) }
                }
                results.add(job, outcome)
                if job.role == .apps { appsDone.leave() }
                if beforeSequencer.contains(job.name) { beforeSequencerDone.leave() }
                everything.leave()
            }
        }
        for job in plan.beforeBarrier { launch(job, after: nil) }
        for job in plan.afterBarrier { launch(job, after: appsDone) }
        for job in plan.afterParticipant { launch(job, after: beforeSequencerDone) }
        everything.wait()

        var (records, failures) = results.ordered(by: jobs)
        // A set counts only when it holds every component its node kind needs (docs/CANTON.md, "Completeness of a set").
        let present = Set(jobs.map(\.role))
        for role in PipelineDefinition.requiredRoles(definition.node.kind, consensus: definition.node.consensus) where !present.contains(role) {
            failures.append(ComponentFailure(component: role.rawValue, role: role.rawValue, reason: "no capture of this role: a \(definition.node.kind.rawValue) set needs one"))
        }
        let unnamed = Manifest(
            formatVersion: Manifest.currentFormatVersion, setId: setId, node: definition.node, epoch: definition.epoch,
            status: failures.isEmpty ? .complete : .partial, failures: failures, toolVersion: cnbackupVersion,
            captureStart: Timestamp.format(start), captureEnd: Timestamp.format(Date()), recovered: nil,
            components: records, barrier: BarrierEvidence.from(records, plan: plan))
        var ordered = unnamed
        ordered.order = definition.order
        if !plan.afterParticipant.isEmpty {
            ordered.sequencerBarrier = BarrierRule.evaluateSequencer(records, before: plan.beforeSequencerComponents)
        }
        let manifest = try SetCommitter(store: store).commit(ordered, layout: layout, signingKey: signingKey)
        if cancellation.isCancelled {
            log.error("backup STOPPED by a signal: what completed was committed as a partial set",
                      metadata: ["completed": "\(records.count)", "failed": "\(failures.map(\.component).joined(separator: ","))"])
        } else if failures.isEmpty {
            log.info("backup complete", metadata: ["components": "\(records.count)"])
        } else {
            log.error("backup PARTIAL: committed as partial, it does not count as a backup",
                      metadata: ["failed": "\(failures.map(\.component).joined(separator: ","))"])
        }
        return RunResult(setId: setId, layout: layout, manifest: manifest)
    }

    func loadRecipients() throws -> [Recipient] {
        var recipients = try definition.recipients.map { try Recipient(parsing: $0) }
        recipients += try definition.symmetricKeyFiles.map { try KeyFile.loadSymmetricRecipient(path: $0) }
        return recipients
    }

    func objectTags(layout: SetLayout, component: String) -> [String: String] { SetCommitter.tags(layout: layout, component: component) }

    /// Runs one capture through the typed stages; a failure is returned, not thrown, so the
    /// other components still commit.
    func captureComponent(_ capture: ComponentJob, layout: SetLayout, recipients: [Recipient], start: Date,
                          recorder: EventRecorder, context: CaptureContext, dedup: DedupRun? = nil,
                          logger: Logger) -> Result<ComponentRecord, CNBackupError> {
        let started = Date()
        let startOrder = recorder.next()
        logger.info("capture started", metadata: ["component": "\(capture.name)", "role": "\(capture.role.rawValue)"])
        do {
            try cancellation.check("capture \(capture.name)")
            let description = ObjectDescription(setId: layout.setId, node: layout.node, migrationId: layout.epoch.migrationId,
                                                serial: layout.epoch.serial, component: capture.name,
                                                role: capture.role.rawValue, captureStart: Timestamp.format(start))
            let objectName = try SetLayout.newObjectName(component: capture.name)
            let (opened, evidence, physical) = try capture.open(context: context, logger: logger)
            let snapshot = capture.part == nil ? nil : context.parallelDumps.snapshot(of: capture.part!)
            // A dump's rows are counted as it streams past (cheap: a newline scan), for `drill`.
            let counting = capture.countsRows ? RowCountingStream(opened) : nil
            let source: ByteStream = counting ?? opened
            let stoppable = CancellableStream(source, cancellation: cancellation, what: "capture \(capture.name)")
            let captured = Captured(stream: Progress.track(stoppable, name: capture.name, total: capture.sizeHint),
                                    description: description, sizeHint: capture.sizeHint)
            if capture.dedup, let dedup {
                var record = try storeDeduplicated(capture, captured: captured, dedup: dedup, layout: layout, recipients: recipients,
                                                   logger: logger)
                record.started = Timestamp.format(started)
                record.ended = Timestamp.format(Date())
                record.startOrder = startOrder
                record.endOrder = recorder.next()
                record.postgres = evidence
                record.sealedRowCounts = try counting?.counter.finish().map { try SealedRowCounts.seal($0, to: recipients) }
                if capture.role == .apps, let evidence { context.recordAppsSnapshot(evidence.serverNowBeforeSnapshot) }
                logger.info("capture stored", metadata: ["component": "\(capture.name)", "plaintext": "\(record.plaintextSize)",
                                                         "stored": "\(record.dedup?.newStoredBytes ?? 0)", "chunks": "\(record.dedup?.chunks ?? 0)",
                                                         "new chunks": "\(record.dedup?.newChunks ?? 0)"])
                return .success(record)
            }
            let compressed = try Compress(settings: definition.compression, checkingFrames: definition.readBack == .full).run(captured)
            let sealed = try Seal(recipients: recipients).run(compressed)
            let stored = try Upload(store: store, key: layout.key(relative: objectName),
                                    tags: objectTags(layout: layout, component: capture.name)).run(sealed)
            let verified = try ReadBack(store: store, mode: definition.readBack).run(stored)
            let endOrder = recorder.next()
            if capture.role == .apps, let evidence { context.recordAppsSnapshot(evidence.serverNowBeforeSnapshot) }
            // A physical capture's stream ended only once pg_basebackup exited 0 and its evidence was taken.
            var physicalEvidence = physical?.evidence
            if physical != nil, physicalEvidence == nil {
                throw CNBackupError(.capture, "the base backup of \(capture.name) ended without its evidence")
            }
            if let physical, physicalEvidence != nil {
                physicalEvidence!.backupManifestObject = storeClearBackupManifest(physical, layout: layout, component: capture.name, logger: logger)
            }
            if capture.role == .apps, let physicalEvidence { context.recordAppsSnapshot(physicalEvidence.serverTimeAtStop) }
            let record = ComponentRecord(
                name: capture.name, role: capture.role, source: capture.summary, objectKey: objectName,
                storedSize: stored.storedSize, storedSHA256: stored.storedSHA256.hex,
                headerSHA256: SHA256Hasher.hash(sealed.header.bytes).hex, etag: stored.info.etag,
                plaintextSize: stored.plaintextSize,
                plaintextDigestHMAC: try sealed.dataKey.plaintextDigestMAC(stored.plaintextSHA256).hex,
                codec: compressed.codec, keyIds: sealed.header.keyIDs, segmentSize: sealed.header.segmentSize,
                started: Timestamp.format(started), ended: Timestamp.format(Date()),
                startOrder: startOrder, endOrder: endOrder, readBack: ReadBackRecord(rawValue: verified.mode.rawValue) ?? .full, postgres: evidence,
                epoch: capture.epoch, physical: physicalEvidence,
                part: capture.part.map { DumpPart(group: $0.group, database: $0.database, index: $0.index, count: $0.count,
                                                  section: $0.section, snapshot: snapshot ?? "") },
                sealedRowCounts: try counting?.counter.finish().map { try SealedRowCounts.seal($0, to: recipients) })
            if let counting, counting.counter.gaveUp != nil {
                logger.info("no row counts recorded", metadata: ["component": "\(capture.name)", "reason": "\(counting.counter.gaveUp!)"])
            }
            logger.info("capture stored", metadata: ["component": "\(capture.name)", "plaintext": "\(record.plaintextSize)",
                                                     "stored": "\(record.storedSize)"])
            return .success(record)
        } catch {
            let failure = (error as? CNBackupError) ?? CNBackupError(.capture, "\(error)")
            // The job's log gets the child's standard error too (known secrets redacted); the manifest
            // gets only cnbackup's own message, never free text from a child.
            logger.error("capture failed", metadata: ["component": "\(capture.name)", "error": "\(Redaction.redact(failure.description))"])
            return .failure(failure)
        }
    }
}

extension BackupRunner {
    /// A deduplicated capture: new chunks stored and read back, then the sealed index (the
    /// component's object, through the usual stages) and the clear chunk table.
    func storeDeduplicated(_ capture: ComponentJob, captured: Captured, dedup: DedupRun, layout: SetLayout,
                           recipients: [Recipient], logger: Logger) throws -> ComponentRecord {
        let tags = objectTags(layout: layout, component: capture.name)
        let writer = DedupWriter(store: store, node: layout.node, secret: dedup.secret, recipients: recipients,
                                 level: definition.compression.level, readBack: definition.readBack, tags: tags, reuse: dedup.reuse,
                                 chunkLock: definition.store.objectLock.map { ChunkLock(lockDays: $0.days, grace: dedup.grace) })
        let result = try writer.write(captured.stream, chunker: ContentDefinedChunker(secret: dedup.secret))
        guard let plaintextSHA256 = captured.plaintext.digest else {
            throw CNBackupError(.capture, "the capture of \(capture.name) ended before its end")
        }
        // Chunks it reuses are safe from prune only while their sets are younger than the grace period.
        guard Date().timeIntervalSince(dedup.start) < dedup.grace else {
            throw CNBackupError(.capture, "the run took longer than the dedup grace period (dedup.graceHours): chunks it reuses may have been pruned meanwhile; raise graceHours")
        }
        var indexBytes: [UInt8] = []
        for reference in result.index { indexBytes += try reference.line() }
        var tableBytes: [UInt8] = []
        for reference in result.table { tableBytes += try reference.line() }
        let tableName = try SetLayout.newChunkTableName(component: capture.name)
        try store.putBytes(key: layout.key(relative: tableName), tableBytes, options: PutOptions(tags: tags, ifAbsent: true))
        let indexName = try SetLayout.newIndexName(component: capture.name)
        let index = Captured(stream: MemoryStream(indexBytes), description: captured.description)
        let compressed = try Compress(settings: CompressionSettings(level: definition.compression.level, workers: 0),
                                      checkingFrames: definition.readBack == .full).run(index)
        let sealed = try Seal(recipients: recipients).run(compressed)
        let stored = try Upload(store: store, key: layout.key(relative: indexName), tags: tags).run(sealed)
        let verified = try ReadBack(store: store, mode: definition.readBack).run(stored)
        var record = ComponentRecord(
            name: capture.name, role: capture.role, source: capture.summary + " (deduplicated)", objectKey: indexName,
            storedSize: stored.storedSize, storedSHA256: stored.storedSHA256.hex,
            headerSHA256: SHA256Hasher.hash(sealed.header.bytes).hex, etag: stored.info.etag,
            plaintextSize: captured.plaintext.count,
            plaintextDigestHMAC: try sealed.dataKey.plaintextDigestMAC(plaintextSHA256).hex,
            codec: compressed.codec, keyIds: sealed.header.keyIDs, segmentSize: sealed.header.segmentSize,
            started: "", ended: "", startOrder: 0, endOrder: 0,
            readBack: ReadBackRecord(rawValue: verified.mode.rawValue) ?? .full, epoch: capture.epoch)
        record.dedup = DedupRecord(chunkTable: tableName, chunkTableSize: Int64(tableBytes.count),
                                   chunkTableSHA256: SHA256Hasher.hash(tableBytes).hex, chunks: result.index.count,
                                   distinctChunks: result.table.count, newChunks: result.newChunks,
                                   newStoredBytes: result.newStoredBytes, reusedFrom: result.reusedFrom,
                                   dedupKeyId: dedup.secret.keyID)
        record.dedup?.graceSeconds = dedup.grace
        return record
    }

    /// Writes the clear copy of a base backup's `backup_manifest` beside its sealed object (only if
    /// absent), so the next run can take an incremental against it without a key that opens backup
    /// data; its SHA-256 is in the signed manifest (docs/FORMAT.md says what it reveals). Returns its
    /// set-relative key, or nil when none was written (the next run then takes a full backup).
    func storeClearBackupManifest(_ physical: PhysicalCaptureStream, layout: SetLayout, component: String, logger: Logger) -> String? {
        guard let bytes = physical.backupManifest else {
            logger.warning("no clear backup_manifest written (larger than \(PhysicalCaptureVisitor.keepLimit) bytes): the next run takes a full backup",
                           metadata: ["component": "\(component)"])
            return nil
        }
        do {
            let name = try SetLayout.newBackupManifestName(component: component)
            try store.putBytes(key: layout.key(relative: name), bytes,
                               options: PutOptions(tags: objectTags(layout: layout, component: component), ifAbsent: true))
            return name
        } catch {
            logger.warning("cannot write the clear backup_manifest: the next run takes a full backup",
                           metadata: ["component": "\(component)", "error": "\(Redaction.redact("\(error)"))"])
            return nil
        }
    }
}

extension BarrierEvidence {
    /// The barrier as the records show it (`BarrierRule`), for the plan's two phases.
    static func from(_ records: [ComponentRecord], plan: BackupPlan) -> BarrierEvidence? {
        guard !plan.appsComponents.isEmpty, !plan.participantComponents.isEmpty else { return nil }
        let outcome = BarrierRule.evaluate(records, apps: plan.appsComponents)
        return BarrierEvidence(appsComponents: plan.appsComponents, participantComponents: plan.participantComponents,
                               appsCompletedOrder: outcome.appsCompletedOrder, participantStartedOrder: outcome.participantStartedOrder,
                               holds: outcome.holds)
    }
}

/// Hands out the order in which this process saw events: clocks of different hosts prove
/// nothing, the order one process saw does.
final class EventRecorder: @unchecked Sendable {
    // @unchecked: `counter` is only touched under `lock`.
    private let lock = NSLock()
    private var counter = 0
    func next() -> Int { lock.lock(); defer { lock.unlock() }; counter += 1; return counter }
}

/// At most `limit` captures at once.
final class Scheduler: @unchecked Sendable {
    // @unchecked: DispatchSemaphore is thread-safe.
    private let semaphore: DispatchSemaphore
    init(limit: Int) { semaphore = DispatchSemaphore(value: limit) }
    func acquire() { semaphore.wait() }
    func release() { semaphore.signal() }
}

final class ResultCollector: @unchecked Sendable {
    // @unchecked: `results` is only touched under `lock`.
    private let lock = NSLock()
    private var results: [String: Result<ComponentRecord, CNBackupError>] = [:]

    func add(_ capture: ComponentJob, _ result: Result<ComponentRecord, CNBackupError>) {
        lock.lock(); defer { lock.unlock() }
        results[capture.name] = result
    }

    func ordered(by captures: [ComponentJob]) -> ([ComponentRecord], [ComponentFailure]) {
        lock.lock(); defer { lock.unlock() }
        var records: [ComponentRecord] = [], failures: [ComponentFailure] = []
        var failedGroups: [(group: String, role: String, parts: [String])] = []
        for capture in captures {
            var failed = true
            switch results[capture.name] {
            case .success(let record): records.append(record); failed = false
            case .failure(let error): failures.append(ComponentFailure(component: capture.name, role: capture.role.rawValue, reason: error.message))
            case nil: failures.append(ComponentFailure(component: capture.name, role: capture.role.rawValue, reason: "never ran"))
            }
            if failed, let part = capture.part {
                if let i = failedGroups.firstIndex(where: { $0.group == part.group }) { failedGroups[i].parts.append(capture.name) }
                else { failedGroups.append((part.group, capture.role.rawValue, [capture.name])) }
            }
        }
        // A parallel dump is one logical dump: one failed part fails the whole database's dump.
        for group in failedGroups {
            failures.append(ComponentFailure(component: group.group, role: group.role,
                                             reason: "the parallel dump is incomplete: \(group.parts.joined(separator: ", ")) failed; its other parts cannot be restored alone"))
        }
        return (records, failures)
    }
}
