import Foundation

/// What must not outlive the process even when it ends at once (a second signal, or a grace
/// period that ran out): private temporary files (a pgpass file, a restore's half-written
/// plaintext) and the process groups of running children. Each owner registers while the thing
/// exists and unregisters when it removed it itself; `run()` is for the executable's exit path only.
public enum LastResort {
    // @unchecked: both sets are only touched under `lock`.
    private final class Registry: @unchecked Sendable {
        let lock = NSLock()
        /// Path -> whether its folder is private to it (made with mkdtemp) and goes too.
        var files: [String: Bool] = [:]
        var processGroups: Set<Int32> = []
        /// Whole private folders (a drill's throwaway PostgreSQL data directory), removed with what they hold.
        var directories: Set<String> = []
    }
    private static let registry = Registry()

    package static func register(file path: String, inPrivateFolder: Bool = false) {
        registry.lock.lock(); registry.files[path] = inPrivateFolder; registry.lock.unlock()
    }
    package static func unregister(file path: String) {
        registry.lock.lock(); registry.files[path] = nil; registry.lock.unlock()
    }
    package static func register(directory path: String) {
        registry.lock.lock(); registry.directories.insert(path); registry.lock.unlock()
    }
    package static func unregister(directory path: String) {
        registry.lock.lock(); registry.directories.remove(path); registry.lock.unlock()
    }
    package static func register(processGroup: Int32) {
        registry.lock.lock(); registry.processGroups.insert(processGroup); registry.lock.unlock()
    }
    package static func unregister(processGroup: Int32) {
        registry.lock.lock(); registry.processGroups.remove(processGroup); registry.lock.unlock()
    }

    /// Kills every registered process group and removes every registered file (and its folder,
    /// when that was made for it alone). Safe to call from any thread, just before `_exit`.
    public static func run() {
        registry.lock.lock()
        let groups = registry.processGroups, files = registry.files, directories = registry.directories
        registry.processGroups.removeAll(); registry.files.removeAll(); registry.directories.removeAll()
        registry.lock.unlock()
        for group in groups { _ = kill(-group, SIGKILL) }
        for directory in directories { try? FileManager.default.removeItem(atPath: directory) }
        for (path, inPrivateFolder) in files {
            unlink(path)
            if inPrivateFolder { rmdir((path as NSString).deletingLastPathComponent) }
        }
    }

    /// The files registered now (for tests).
    package static var registeredFiles: Set<String> {
        registry.lock.lock(); defer { registry.lock.unlock() }
        return Set(registry.files.keys)
    }
}
