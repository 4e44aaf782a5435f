#ifndef CNB_COPENSSL_SHIM_H
#define CNB_COPENSSL_SHIM_H
// libcrypto (OpenSSL 3) for cnbackup. Only Sources/CNBackup/Crypto/OpenSSL.swift imports this module.
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/bio.h>

// Typed wrappers around calls Swift cannot import well (macros, variadic or long argument lists).

static inline int cnb_hkdf_sha256(const unsigned char *ikm, size_t ikm_len,
                                  const unsigned char *salt, size_t salt_len,
                                  const unsigned char *info, size_t info_len,
                                  unsigned char *out, size_t out_len) {
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    if (ctx == NULL) return 0;
    int ok = EVP_PKEY_derive_init(ctx) > 0
        && EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) > 0
        && EVP_PKEY_CTX_set1_hkdf_salt(ctx, salt, (int)salt_len) > 0
        && EVP_PKEY_CTX_set1_hkdf_key(ctx, ikm, (int)ikm_len) > 0
        && EVP_PKEY_CTX_add1_hkdf_info(ctx, info, (int)info_len) > 0
        && EVP_PKEY_derive(ctx, out, &out_len) > 0;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

static inline int cnb_hmac_sha256(const unsigned char *key, size_t key_len,
                                  const unsigned char *data, size_t data_len,
                                  unsigned char out[32]) {
    size_t out_len = 0;
    return EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len, data, data_len,
                     out, 32, &out_len) != NULL && out_len == 32;
}

static inline int cnb_gcm_set_ivlen(EVP_CIPHER_CTX *ctx, int len) {
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, len, NULL);
}
static inline int cnb_gcm_get_tag(EVP_CIPHER_CTX *ctx, unsigned char *tag) {
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag);
}
static inline int cnb_gcm_set_tag(EVP_CIPHER_CTX *ctx, const unsigned char *tag) {
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, (void *)tag);
}

// A private key from PEM text (PKCS#8 or traditional), as Google's service-account key files hold
// it; NULL when the text is not one. Never prompts for a passphrase.
static inline EVP_PKEY *cnb_private_key_from_pem(const char *pem, int length) {
    BIO *bio = BIO_new_mem_buf(pem, length);
    if (bio == NULL) return NULL;
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
    BIO_free(bio);
    return key;
}
#endif
