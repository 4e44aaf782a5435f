import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage

// Key material lives in this process's memory: a core dump would write it to disk.
disableCoreDumps()
useFlatMemoryAllocation()
ignoreBrokenPipes()
StopSignals.install()
CNBackupCommand.main()
