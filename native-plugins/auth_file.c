/*
 * auth_file - AUTH users from a password file with crypt(3) hashes.
 *
 * Hook: auth. conf/plugins line: auth_file [file=PATH] [allow_legacy=no]
 *   file          the password file (default "passwd" in the configuration directory)
 *   allow_legacy  accept hashes libcrypt calls legacy (md5-crypt, sha256-crypt, DES, ...);
 *                 default no: such a line fails the load, so a weak hash is never used quietly
 *
 * File: one "user:hash" per line; further ":field"s are ignored, so a Dovecot passwd-file
 * works; blank lines and lines starting with '#' are skipped. The hash is anything this
 * system's libcrypt verifies: yescrypt ($y$), sha512-crypt ($6$), bcrypt ($2b$), scrypt ($7$),
 * gost-yescrypt ($gy$); Dovecot's {CRYPT}, {SHA512-CRYPT}, {BLF-CRYPT} prefixes are accepted.
 * A hash starting with '!' or '*' locks the user. Make one with:
 *     mkpasswd -m yescrypt        (package whois)  or   openssl passwd -6
 * Workers load their plugins after dropping privileges, so the file must be readable by the
 * user porter runs as (user = in porter.conf) and by nobody else: a file everyone may read
 * loads with a warning. A changed file is read again at the next reload (SIGHUP).
 *
 * Verdicts: the right password: OK. A wrong one, or a locked user: DENY (535 5.7.8). A user
 * the file does not know: DECLINED, so that another auth plugin may know them - after the same
 * hashing work as for a known user, so that timing does not tell which users exist.
 *
 * The hashing (deliberately slow) runs on the worker's thread pool through porter_run_blocking
 * with crypt_rn; the plugin's copy of the password is wiped when the job ends. Nothing is
 * logged about the password. Fatal: nothing (out of memory in init is a load error).
 */
#include <crypt.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <porter/plugin.h>

#define AUTH_FILE_LINE_MAX 4096
#define AUTH_FILE_USERS_MAX 1000000
#define AUTH_FILE_NAME_MAX 255

struct auth_file_user {
    char *name;
    char *hash;
    int line;                     /* where it is in the file, for messages */
};

struct auth_file {
    struct auth_file_user *users; /* sorted by name */
    size_t count;
    char *dummy_hash;             /* hashed for unknown users */
};

/* One check on the pool: copies, so the worker thread never touches the session. */
struct auth_file_job {
    char *hash;
    char *password;
    bool known;
    bool locked;
};

static void auth_file_free_users(struct auth_file *f)
{
    for (size_t i = 0; i < f->count; i++) {
        free(f->users[i].name);
        free(f->users[i].hash);
    }
    free(f->users);
    f->users = NULL;
    f->count = 0;
}

static int auth_file_compare(const void *a, const void *b)
{
    const struct auth_file_user *one = a, *two = b;
    return strcmp(one->name, two->name);
}

/* auth_file_strip_scheme - skip a Dovecot "{...CRYPT}" prefix; NULL for another scheme */
static const char *auth_file_strip_scheme(const char *hash)
{
    if (hash[0] != '{')
        return hash;
    static const char *const schemes[] = {"{CRYPT}", "{SHA512-CRYPT}", "{SHA256-CRYPT}",
                                          "{BLF-CRYPT}", "{MD5-CRYPT}"};
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (strncmp(hash, schemes[i], strlen(schemes[i])) == 0)
            return hash + strlen(schemes[i]);
    return NULL;
}

/* auth_file_line - one line into f; NULL or why it is bad (static text) */
static const char *auth_file_line(struct auth_file *f, char *line, int line_number,
                                  bool allow_legacy)
{
    char *colon = strchr(line, ':');
    if (colon == NULL)
        return "want user:hash";
    *colon = '\0';
    const char *name = line;
    char *hash_field = colon + 1;
    hash_field[strcspn(hash_field, ":")] = '\0';
    size_t name_length = strlen(name);
    if (name_length == 0 || name_length > AUTH_FILE_NAME_MAX)
        return "the user name is empty or longer than 255 bytes";
    for (const char *p = name; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            return "the user name has a control character, a quote or a backslash";
    }
    const char *hash = auth_file_strip_scheme(hash_field);
    if (hash == NULL)
        return "unknown {SCHEME}: only crypt(3) hashes are supported";
    bool locked = hash[0] == '!' || hash[0] == '*';
    if (!locked) {
        int check = crypt_checksalt(hash);
        if (check == CRYPT_SALT_INVALID || check == CRYPT_SALT_METHOD_DISABLED)
            return "the hash is not one this system's libcrypt supports";
        if (check == CRYPT_SALT_METHOD_LEGACY && !allow_legacy)
            return "the hash uses a legacy method (use yescrypt, sha512-crypt or bcrypt, or "
                   "set allow_legacy=yes)";
    }
    if (f->count >= AUTH_FILE_USERS_MAX)
        return "too many users";
    struct auth_file_user *grown = realloc(f->users, (f->count + 1) * sizeof *f->users);
    if (grown == NULL)
        return "out of memory";
    f->users = grown;
    f->users[f->count].name = strdup(name);
    f->users[f->count].hash = strdup(hash);
    f->users[f->count].line = line_number;
    if (f->users[f->count].name == NULL || f->users[f->count].hash == NULL) {
        free(f->users[f->count].name);
        free(f->users[f->count].hash);
        return "out of memory";
    }
    f->count++;
    return NULL;
}

/* auth_file_load - read the file; the number of errors reported */
static int auth_file_load(struct auth_file *f, porter_args *a, const char *path, bool allow_legacy)
{
    FILE *file = fopen(path, "re");
    if (file == NULL) {
        porter_arg_error(a, "file: cannot open %s: %s", path, strerror(errno));
        return 1;
    }
    struct stat st;
    if (fstat(fileno(file), &st) == 0 && (st.st_mode & S_IROTH))
        porter_log(NULL, PORTER_LOG_WARNING, "event=auth_file_warning file=%s warning=\"the "
                   "password file is readable by everyone\"", path);
    int errors = 0;
    int line_number = 0;
    char line[AUTH_FILE_LINE_MAX + 2];
    while (fgets(line, sizeof line, file) != NULL) {
        line_number++;
        size_t length = strlen(line);
        if (length > AUTH_FILE_LINE_MAX) {
            porter_arg_error(a, "%s:%d: line longer than %d bytes", path, line_number,
                             AUTH_FILE_LINE_MAX);
            errors++;
            int c;
            while ((c = fgetc(file)) != EOF && c != '\n')
                ;
            continue;
        }
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0' || line[0] == '#')
            continue;
        const char *reason = auth_file_line(f, line, line_number, allow_legacy);
        if (reason != NULL) {
            porter_arg_error(a, "%s:%d: %s", path, line_number, reason);
            if (++errors >= 100)
                break;
        }
    }
    fclose(file);
    explicit_bzero(line, sizeof line);
    if (f->count > 1) {
        qsort(f->users, f->count, sizeof *f->users, auth_file_compare);
        for (size_t i = 1; i < f->count; i++) {
            if (strcmp(f->users[i - 1].name, f->users[i].name) == 0) {
                const struct auth_file_user *one = &f->users[i - 1], *two = &f->users[i];
                porter_arg_error(a, "%s:%d: user %s is listed twice (also on line %d)", path,
                                 one->line > two->line ? one->line : two->line, two->name,
                                 one->line < two->line ? one->line : two->line);
                errors++;
            }
        }
    }
    return errors;
}

/* auth_file_dummy - a hash of the same kind as the users' for the unknown-user path */
static char *auth_file_dummy(const struct auth_file *f)
{
    for (size_t i = 0; i < f->count; i++)
        if (f->users[i].hash[0] != '!' && f->users[i].hash[0] != '*')
            return strdup(f->users[i].hash);
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (crypt_gensalt_rn(NULL, 0, NULL, 0, salt, (int)sizeof salt) == NULL)
        return NULL;
    struct crypt_data *data = calloc(1, sizeof *data);
    if (data == NULL)
        return NULL;
    char *hashed = crypt_rn("porter-unknown-user", salt, data, (int)sizeof *data);
    char *copy = hashed != NULL ? strdup(hashed) : NULL;
    free(data);
    return copy;
}

static void auth_file_fini(void *state)
{
    struct auth_file *f = state;
    if (f == NULL)
        return;
    auth_file_free_users(f);
    free(f->dummy_hash);
    free(f);
}

static void *auth_file_init(porter_args *a)
{
    struct auth_file *f = calloc(1, sizeof *f);
    if (f == NULL) {
        porter_arg_error(a, "out of memory");
        return NULL;
    }
    const char *path = porter_arg_path(a, "file", "passwd");
    bool allow_legacy = porter_arg_bool(a, "allow_legacy", false);
    if (auth_file_load(f, a, path, allow_legacy) > 0)
        return f;
    f->dummy_hash = auth_file_dummy(f);
    if (f->dummy_hash == NULL)
        porter_arg_error(a, "libcrypt cannot hash: %s", strerror(errno));
    return f;
}

static void auth_file_job_free(struct auth_file_job *job)
{
    if (job == NULL)
        return;
    if (job->password != NULL) {
        explicit_bzero(job->password, strlen(job->password));
        free(job->password);
    }
    free(job->hash);
    free(job);
}

/* auth_file_same - compare two strings in time that depends only on their lengths */
static bool auth_file_same(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t longest = la > lb ? la : lb;
    unsigned char difference = (unsigned char)(la != lb);
    for (size_t i = 0; i < longest; i++)
        difference |= (unsigned char)((i < la ? a[i] : 0) ^ (i < lb ? b[i] : 0));
    return difference == 0;
}

/* auth_file_work - on a pool thread: hash the password with the user's salt; 1 if it matches */
static int auth_file_work(void *arg)
{
    struct auth_file_job *job = arg;
    struct crypt_data *data = calloc(1, sizeof *data);
    if (data == NULL)
        return -1;
    const char *hashed = crypt_rn(job->password, job->hash, data, (int)sizeof *data);
    int result = hashed != NULL && auth_file_same(hashed, job->hash) ? 1 : hashed ? 0 : -1;
    explicit_bzero(data, sizeof *data);
    free(data);
    explicit_bzero(job->password, strlen(job->password));
    return result;
}

/* auth_file_done - back on the loop: the verdict */
static int auth_file_done(porter_session *s, void *arg, int result)
{
    struct auth_file_job *job = arg;
    bool known = job->known, locked = job->locked;
    auth_file_job_free(job);
    if (s == NULL)
        return PORTER_DECLINED;
    if (result < 0) {
        porter_log(s, PORTER_LOG_ERR, "event=auth_file_error error=\"libcrypt could not hash\"");
        return porter_reply(s, PORTER_DENYSOFT, 454, "4.7.0", "Temporary authentication failure");
    }
    if (!known)
        return PORTER_DECLINED;
    if (locked || result != 1)
        return porter_reply(s, PORTER_DENY, 535, "5.7.8", "Authentication credentials invalid");
    return PORTER_OK;
}

static int auth_file_auth(porter_session *s, void *state)
{
    struct auth_file *f = state;
    const char *name = porter_auth_username(s);
    const char *password = porter_auth_password(s);
    if (name == NULL || password == NULL)
        return PORTER_DECLINED;
    struct auth_file_user key = {.name = (char *)name};
    const struct auth_file_user *user = NULL;
    if (f->count > 0)
        user = bsearch(&key, f->users, f->count, sizeof *f->users, auth_file_compare);
    struct auth_file_job *job = calloc(1, sizeof *job);
    if (job == NULL)
        return porter_reply(s, PORTER_DENYSOFT, 454, "4.7.0", "Temporary authentication failure");
    job->known = user != NULL;
    job->locked = user != NULL && (user->hash[0] == '!' || user->hash[0] == '*');
    /* A locked user still costs a hash, like everybody else. */
    job->hash = strdup(user != NULL && !job->locked ? user->hash : f->dummy_hash);
    job->password = strdup(password);
    if (job->hash == NULL || job->password == NULL) {
        auth_file_job_free(job);
        return porter_reply(s, PORTER_DENYSOFT, 454, "4.7.0", "Temporary authentication failure");
    }
    return porter_run_blocking(s, auth_file_work, auth_file_done, job);
}

PORTER_PLUGIN(.name = "auth_file",
              .description = "AUTH users from a password file of crypt(3) hashes. One "
                             "\"user:hash\" per line (yescrypt, sha512-crypt, bcrypt, ...); "
                             "further \":field\"s are ignored, so a Dovecot passwd-file works. "
                             "The right password authenticates (235); a wrong one, or a locked "
                             "user (a hash starting with ! or *), gets 535 5.7.8; a user the file "
                             "does not know is left to the next auth plugin, after the same "
                             "hashing work. Hashing runs on the thread pool. The file must be "
                             "readable by the user porter runs as and by nobody else; it is read "
                             "again at each reload.",
              .arguments = PORTER_ARGUMENTS(
                  {"file", "passwd",
                   "The password file, relative to the configuration directory. Make a hash with "
                   "`mkpasswd -m yescrypt` or `openssl passwd -6`."},
                  {"allow_legacy", "no",
                   "yes accepts hashes libcrypt calls legacy (md5-crypt, sha256-crypt, DES); with "
                   "no, such a line fails the load."}),
              .init = auth_file_init, .fini = auth_file_fini,
              .hooks[PORTER_HOOK_AUTH] = auth_file_auth);
