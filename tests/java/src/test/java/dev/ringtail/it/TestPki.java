package dev.ringtail.it;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Certificates for the security tests, made with {@code openssl} (and the JDK's
 * {@code keytool} for a Java PKCS12 trust store) in a temporary directory, as
 * tests/test_tls.py makes them: a CA; a broker certificate (SAN 127.0.0.1 / localhost) as a PEM
 * keystore file ({@code server-keystore.pem}: key + chain) and as PKCS12 ({@code server.p12});
 * a client certificate with the subject {@code CN=alice,OU=Clients,O=Ringtail} as PEM
 * ({@code client-keystore.pem}) and PKCS12 ({@code client.p12}); the CA as PEM
 * ({@code ca.crt}) and as a PKCS12 trust store ({@code truststore.p12}). Store and key
 * passwords are {@link #PASSWORD}.
 */
public final class TestPki {
  /** The password of every PKCS12 store and key. */
  public static final String PASSWORD = "store-secret";

  private final Path dir;

  private TestPki(Path dir) {
    this.dir = dir;
  }

  /** Generates everything in a new temporary directory (about a second). */
  public static TestPki create() {
    try {
      TestPki pki = new TestPki(Files.createTempDirectory("ringtail-java-pki-"));
      pki.generate();
      return pki;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The absolute path of one generated file. */
  public String path(String name) {
    return dir.resolve(name).toString();
  }

  private void generate() throws IOException {
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=Ringtail Java Test CA");
    Files.writeString(dir.resolve("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
            + "basicConstraints=CA:FALSE\n");
    Files.writeString(dir.resolve("client.ext"),
        "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n");
    for (String[] entity : new String[][] {
        {"server", "/CN=localhost"}, {"client", "/O=Ringtail/OU=Clients/CN=alice"}}) {
      String name = entity[0];
      run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
          "-out", name + ".key");
      run("openssl", "req", "-new", "-key", name + ".key", "-out", name + ".csr",
          "-subj", entity[1]);
      run("openssl", "x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
          "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext");
      Files.writeString(dir.resolve(name + "-keystore.pem"),
          read(name + ".key") + read(name + ".crt") + read("ca.crt"));
      run("openssl", "pkcs12", "-export", "-in", name + ".crt", "-inkey", name + ".key",
          "-certfile", "ca.crt", "-name", name, "-out", name + ".p12",
          "-passout", "pass:" + PASSWORD);
    }
    run("keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", "ca.crt",
        "-keystore", "truststore.p12", "-storetype", "PKCS12", "-storepass", PASSWORD);
  }

  private String read(String name) throws IOException {
    return Files.readString(dir.resolve(name), StandardCharsets.UTF_8);
  }

  private void run(String... command) throws IOException {
    List<String> args = new ArrayList<>(List.of(command));
    ProcessBuilder builder = new ProcessBuilder(args).directory(dir.toFile());
    builder.redirectErrorStream(true);
    builder.redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
    Process process = builder.start();
    try {
      byte[] output = process.getInputStream().readAllBytes();
      if (!process.waitFor(60, TimeUnit.SECONDS) || process.exitValue() != 0) {
        process.destroyForcibly();
        throw new IllegalStateException(
            String.join(" ", args) + " failed:\n" + new String(output, StandardCharsets.UTF_8));
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      process.destroyForcibly();
      throw new IllegalStateException("interrupted", e);
    }
  }
}
