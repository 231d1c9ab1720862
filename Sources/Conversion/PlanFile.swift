import Diagnostics
import JSON
import SystemIO

extension DirectoryFinisher {
    /// What `OUT/.dsconvert/plan.json` holds: the shards to expect, the settings they were made
    /// with and the input folder.
    struct PlanFile {
        var json: JSONValue
        var shards: [String]
        var settings: String
        var input: String
    }

    /// Reads the plan of `out`: `notAConversionDirectory` when there is none; any other problem
    /// (unreadable, invalid JSON, `[]`, missing members) is `invalidStateFile` naming the file.
    static func readPlan(outputDirectory out: String, path: String) throws -> PlanFile {
        let exists: Bool
        do { exists = try Sys.entryExists(path) } catch {
            throw ConversionError.invalidStateFile(path: path, "cannot be read: \((error as? any DiagnosticError)?.message ?? "\(error)")")
        }
        guard exists else { throw ConversionError.notAConversionDirectory(out) }
        let bytes: [UInt8]
        do { bytes = try Sys.readFile(path, limit: 256 << 20) } catch {
            throw ConversionError.invalidStateFile(path: path, "cannot be read: \((error as? any DiagnosticError)?.message ?? "\(error)")")
        }
        let v: JSONValue
        do { v = try JSONParser.parse(bytes) } catch {
            throw ConversionError.invalidStateFile(path: path, "not valid JSON (byte \(error.byteOffset)): \(error.message); delete \(ResumeRecord.directoryName) and run the conversion again")
        }
        guard v.objectMembers != nil, let shardValues = v["shards"]?.arrayValue, let settings = v["settings"]?.stringValue,
              let input = v["input_directory"]?.stringValue else {
            throw ConversionError.invalidStateFile(path: path, "not a dsconvert plan: expected an object with \"shards\", \"settings\" and \"input_directory\"; delete \(ResumeRecord.directoryName) and run the conversion again")
        }
        let shards = shardValues.compactMap(\.stringValue)
        guard shards.count == shardValues.count else {
            throw ConversionError.invalidStateFile(path: path, "not a dsconvert plan: \"shards\" holds a value that is not a file name")
        }
        return PlanFile(json: v, shards: shards, settings: settings, input: input)
    }
}
