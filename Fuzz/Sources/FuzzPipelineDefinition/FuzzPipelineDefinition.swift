import CNBackup
import FuzzSupport
import CNBackupCore
import CNBackupStorage

// The pipeline file parser: YAML (Yams, libyaml) into a checked PipelineDefinition, as
// `cnbackup validate` and `cnbackup run` read pipelines/*.yaml. Input: the file's bytes.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPipelineDefinition(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: data == nil ? 0 : size), as: UTF8.self)
    expectRefusalOrSuccess("PipelineDefinition.parse") {
        let definition = try PipelineDefinition.parse(text, file: "fuzz.yaml")
        // What the plan and the manifest print of a parsed definition.
        _ = definition.captures.map(\.source.summary)
        try definition.checkDatabaseEpochs(file: "fuzz.yaml")
    }
    return 0
}

@main enum FuzzPipelineDefinitionMain {
    static func main() { runLibFuzzer(fuzzPipelineDefinition) }
}
