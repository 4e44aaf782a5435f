import Foundation
import Testing
import CNBackupCore
import CNBackupTestKit

/// Half compressible text, half noise, so frames differ in size.
private func mixedBytes(_ count: Int) -> [UInt8] {
    let text = Array("INSERT INTO transfers VALUES (42, 'party-17::1220abcdef', 1000.0000000000);\n".utf8)
    let noise = patternBytes(count)
    return (0..<count).map { ($0 / 4096) % 2 == 0 ? text[$0 % text.count] : noise[$0] }
}

@Suite struct ZstdFrameTests {
    @Test(arguments: [0, 1, zstdFrameSize - 1, zstdFrameSize, zstdFrameSize + 1, 2 * zstdFrameSize + 12_345])
    func framedRoundTripWithEveryWorkerCount(size: Int) throws {
        let plaintext = mixedBytes(size)
        for workers in [0, 1, 2] {
            let compressor = try ZstdFramedCompressStream(MemoryStream(plaintext, chunkSize: 777_777),
                                                          settings: CompressionSettings(level: 3, workers: workers), checkingFrames: true)
            let compressed = try compressor.readAll(limit: 1 << 30)
            #expect(compressor.checkedBytes == Int64(size))
            // As many frames as blocks of zstdFrameSize (one empty frame for empty input).
            var frames = 0
            let splitter = ZstdFrameSplitter(MemoryStream(compressed, chunkSize: 65_536), maxFrameBytes: 1 << 30)
            while let frame = try splitter.next() {
                frames += 1
                #expect(frame.hasChecksum)
                #expect(frame.contentSize != nil && frame.contentSize! <= Int64(zstdFrameSize))
            }
            #expect(frames == max(1, (size + zstdFrameSize - 1) / zstdFrameSize))
            for decodeWorkers in [1, 2, 3] {
                let decoded = try ZstdParallelDecompressStream(MemoryStream(compressed, chunkSize: 100_003), workers: decodeWorkers).readAll(limit: 1 << 30)
                #expect(decoded == plaintext)
            }
            // The one-frame-at-a-time decoder (older versions, and `zstd -d`) reads the concatenation.
            #expect(try ZstdDecompressStream(MemoryStream(compressed)).readAll(limit: 1 << 30) == plaintext)
        }
    }

    @Test func aSingleFrameObjectOfEarlierVersionsIsDecodedOnOneThread() throws {
        let plaintext = mixedBytes(3 * zstdFrameSize / 2)
        let single = try ZstdCompressStream(MemoryStream(plaintext), settings: CompressionSettings(level: 3, workers: 2)).readAll(limit: 1 << 30)
        let splitter = ZstdFrameSplitter(MemoryStream(single), maxFrameBytes: 1 << 30)
        #expect(try splitter.peekHeader()?.contentSize == nil)   // streamed: no size in its header
        #expect(try ZstdParallelDecompressStream(MemoryStream(single, chunkSize: 4096)).readAll(limit: 1 << 30) == plaintext)
    }

    @Test func damagedCutOrOversizedStreamsAreRefused() throws {
        let plaintext = mixedBytes(zstdFrameSize + 5000)
        let compressed = try ZstdFramedCompressStream(MemoryStream(plaintext), settings: CompressionSettings()).readAll(limit: 1 << 30)
        // Cut inside the second frame, inside the first, or right after the first frame's magic.
        for cut in [compressed.count - 3, compressed.count / 3, 5] {
            #expect(throws: CNBackupError.self) {
                try ZstdParallelDecompressStream(MemoryStream(Array(compressed.prefix(cut))), workers: 2).readAll(limit: 1 << 30)
            }
        }
        // A flipped byte in a block fails that frame's checksum (or its decoding).
        var damaged = compressed; damaged[damaged.count / 4] ^= 0x55
        #expect(throws: CNBackupError.self) { try ZstdParallelDecompressStream(MemoryStream(damaged), workers: 2).readAll(limit: 1 << 30) }
        // A framed stream cannot make a reader hold a frame beyond its bound.
        let splitter = ZstdFrameSplitter(MemoryStream(compressed), maxFrameBytes: 1000)
        let error = #expect(throws: CNBackupError.self) { _ = try splitter.next() }
        #expect(error?.message.contains("larger than 1000 bytes") == true)
        #expect(throws: CNBackupError.self) { try ZstdParallelDecompressStream(MemoryStream([])).readAll(limit: 1 << 30) }
    }

    @Test(.timeLimit(.minutes(1)))
    func closingInTheMiddleEndsEveryThread() throws {
        // A long input, one frame read, then close: the workers, the checker waiting on them and
        // the decoders must all let go (a hang fails the time limit).
        for workers in [1, 2] {
            let input = MemoryStream(mixedBytes(3 * zstdFrameSize), chunkSize: 1 << 20)
            let compressor = try ZstdFramedCompressStream(input, settings: CompressionSettings(level: 1, workers: workers), checkingFrames: true)
            let first = try compressor.next()
            #expect(first != nil && !first!.isEmpty)
            compressor.close()
            let framed = try ZstdFramedCompressStream(MemoryStream(mixedBytes(3 * zstdFrameSize)), settings: CompressionSettings(level: 1, workers: 2)).readAll(limit: 1 << 30)
            let decoder = ZstdParallelDecompressStream(MemoryStream(framed, chunkSize: 1 << 20), workers: workers)
            #expect(try decoder.next()?.count == zstdFrameSize)
            decoder.close()
        }
    }

    @Test func orderedParallelMapKeepsOrderAndStopsAtTheFirstError() throws {
        var next = 0
        let map = OrderedParallelMap<[UInt8], Int>(workers: 3, window: 4, name: "test",
                                          source: { next += 1; return next <= 200 ? [UInt8(next % 256)] : nil },
                                          transform: { block in
                                              usleep(UInt32.random(in: 0...300))
                                              return Int(block[0])
                                          })
        var seen: [Int] = []
        while let value = try map.next() { seen.append(value) }
        #expect(seen == (1...200).map { $0 % 256 })

        var count = 0
        let failing = OrderedParallelMap<[UInt8], Int>(workers: 2, window: 2, name: "test",
                                              source: { count += 1; return count <= 50 ? [UInt8(count)] : nil },
                                              transform: { block in
                                                  if block[0] == 17 { throw CNBackupError(.io, "block 17") }
                                                  return Int(block[0])
                                              })
        let error = #expect(throws: CNBackupError.self) { while try failing.next() != nil {} }
        #expect(error?.message == "block 17")
        failing.stop()
    }
}
