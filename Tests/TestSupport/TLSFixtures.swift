import EventCore
import Glibc

/// Certificates made by the test with the `openssl` command, in a directory
/// of their own (removed when the object goes): a CA, a server certificate it
/// signed for `localhost`, `127.0.0.1` and `site.test`, one for another name,
/// one that expired (made under faketime), and a self-signed one.
public final class TLSFixtures {
    public let directory: String

    public var caCertificate: String { directory + "/ca.pem" }
    public var serverCertificate: String { directory + "/server.pem" }
    public var serverKey: String { directory + "/server.key" }
    public var wrongNameCertificate: String { directory + "/wrong.pem" }
    public var wrongNameKey: String { directory + "/wrong.key" }
    public var expiredCertificate: String { directory + "/expired.pem" }
    public var expiredKey: String { directory + "/expired.key" }
    public var selfSignedCertificate: String { directory + "/self.pem" }
    public var selfSignedKey: String { directory + "/self.key" }

    public init() throws {
        directory = temporaryPath("tls")
        mkdir(directory, 0o700)
        let d = directory
        let script = """
        set -e
        cd '\(d)'
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 30 \\
          -subj '/CN=swift-libev test CA' 2>/dev/null
        sign() { # name, SAN, days, [faketime]
          openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key -out $1.csr -subj "/CN=$1" 2>/dev/null
          printf 'subjectAltName=%s\\n' "$2" > $1.ext
          $4 openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $1.pem -days $3 -extfile $1.ext 2>/dev/null
        }
        sign server 'DNS:localhost,DNS:site.test,IP:127.0.0.1' 30
        sign wrong 'DNS:other.test' 30
        sign expired 'DNS:localhost,IP:127.0.0.1' 1 "faketime 2020-01-01"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout self.key -out self.pem -days 30 \\
          -subj '/CN=localhost' -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' 2>/dev/null
        """
        let output = try runProcess("/bin/sh", ["-c", script], timeout: 60)
        guard output.exitCode == 0 else {
            throw EventLoopError.system("making the test certificates: \(output)", .ioError)
        }
    }

    deinit { _ = try? runProcess("/bin/rm", ["-rf", directory]) }
}
