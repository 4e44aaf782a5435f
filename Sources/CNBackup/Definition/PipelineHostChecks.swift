import Foundation
import CNBackupCore
import CNBackupProcess

/// What `run` needs of the host it runs on, checked without side effects by `validate`:
/// key files exist, are readable and private ones are not open to others; commands exist on the
/// PATH children get; files and folders to capture exist; credential files exist.
extension PipelineDefinition {
    /// Paths in a pipeline file are relative to the file's folder, not to the working directory
    /// (a CronJob's and an operator's working directories differ).
    public func resolvingRelativePaths(against folder: String) -> PipelineDefinition {
        func resolve(_ path: String) -> String {
            guard !path.hasPrefix("/"), !path.isEmpty else { return path }
            return URL(fileURLWithPath: folder).appendingPathComponent(path).standardizedFileURL.path
        }
        var copy = self
        copy.signingKeyFile = resolve(signingKeyFile)
        copy.symmetricKeyFiles = symmetricKeyFiles.map(resolve)
        copy.store.caFile = store.caFile.map(resolve)
        copy.dedup?.keyFile = resolve(dedup?.keyFile ?? "")
        copy.captures = captures.map { capture in
            var capture = capture
            switch capture.source {
            case .file(let path): capture.source = .file(path: resolve(path))
            case .directory(let path): capture.source = .directory(path: resolve(path))
            case .postgres(var pg):
                pg.passwordFile = pg.passwordFile.map(resolve)
                pg.binDirectory = pg.binDirectory.map(resolve)
                capture.source = .postgres(pg)
            case .http(var http):
                http.caFile = http.caFile.map(resolve)
                http.tokenFile = http.tokenFile.map(resolve)
                if var oauth = http.oauth { oauth.clientSecretFile = resolve(oauth.clientSecretFile); http.oauth = oauth }
                capture.source = .http(http)
            case .kubernetesSecret(var secret):
                secret.tokenFile = secret.tokenFile.map(resolve)
                secret.caFile = secret.caFile.map(resolve)
                capture.source = .kubernetesSecret(secret)
            case .command, .snapshotReference:
                break
            }
            return capture
        }
        return copy
    }

    /// Everything on this host that `run` would fail on, as messages; empty when all is there.
    /// Reads key files (to check they parse) but writes nothing and opens no store.
    public func hostProblems() -> [String] {
        var problems: [String] = []
        func readable(_ path: String, _ what: String) {
            var status = stat()
            guard stat(path, &status) == 0 else { problems.append("\(what) \(path) does not exist"); return }
            guard access(path, R_OK) == 0 else { problems.append("\(what) \(path) is not readable by this user (uid \(getuid()))"); return }
        }
        do { _ = try KeyFile.loadSigningKey(path: signingKeyFile) } catch let error as CNBackupError {
            problems.append("signing.keyFile: \(error.message)")
        } catch { problems.append("signing.keyFile: \(error)") }
        for (index, path) in symmetricKeyFiles.enumerated() {
            do { _ = try KeyFile.loadSymmetricRecipient(path: path) } catch let error as CNBackupError {
                problems.append("encryption.symmetricKeyFiles[\(index)]: \(error.message)")
            } catch { problems.append("encryption.symmetricKeyFiles[\(index)]: \(error)") }
        }
        if let dedup {
            do { _ = try KeyFile.loadDedupSecret(path: dedup.keyFile) } catch let error as CNBackupError {
                problems.append("dedup.keyFile: \(error.message)")
            } catch { problems.append("dedup.keyFile: \(error)") }
        }
        if let ca = store.caFile { readable(ca, "store.caFile") }
        if let problem = store.fileStoreFolderCheck(createAllowed: false)?.problem { problems.append("store.url: \(problem)") }
        let childPath = ChildProcess.environment(adding: [:])["PATH"] ?? ""
        for capture in captures {
            let at = "capture \(capture.name):"
            switch capture.source {
            case .command(let arguments, let environment):
                let path = environment["PATH"] ?? childPath
                if let program = arguments.first, ChildProcess.resolve(program, path: path) == nil {
                    problems.append(program.contains("/")
                        ? "\(at) command \(program) does not exist or is not executable"
                        : "\(at) command \(program) is not on the PATH the capture gets (\(path)): install it or give its full path")
                }
            case .file(let path):
                var status = stat()
                if stat(path, &status) != 0 { problems.append("\(at) file \(path) does not exist") }
                else if (status.st_mode & S_IFMT) == S_IFDIR { problems.append("\(at) file \(path) is a folder: use directory:") }
                else if access(path, R_OK) != 0 { problems.append("\(at) file \(path) is not readable by this user (uid \(getuid()))") }
            case .directory(let path):
                var status = stat()
                if stat(path, &status) != 0 { problems.append("\(at) folder \(path) does not exist") }
                else if (status.st_mode & S_IFMT) != S_IFDIR { problems.append("\(at) \(path) is not a folder: use file:") }
                else if access(path, R_OK | X_OK) != 0 { problems.append("\(at) folder \(path) is not readable by this user (uid \(getuid()))") }
            case .postgres(let pg):
                if let file = pg.passwordFile {
                    // A database password is a secret like a key: open to others, it is refused.
                    do { try KeyFile.requirePrivateMode(path: file, what: "passwordFile") } catch let error as CNBackupError {
                        problems.append("\(at) \(error.message)")
                    } catch { problems.append("\(at) passwordFile: \(error)") }
                }
                if let bin = pg.binDirectory { readable(bin, "\(at) binDirectory") }
            case .http(let http):
                if let file = http.caFile { readable(file, "\(at) caFile") }
                if let file = http.tokenFile { readable(file, "\(at) tokenFile") }
                if let file = http.oauth?.clientSecretFile { readable(file, "\(at) oauth.clientSecretFile") }
            case .kubernetesSecret(let secret):
                if let file = secret.tokenFile { readable(file, "\(at) tokenFile") }
                if let file = secret.caFile { readable(file, "\(at) caFile") }
            case .snapshotReference:
                break
            }
        }
        return problems
    }
}
