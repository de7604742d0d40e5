// zm::spool: the POSTOFFICE, its folders, and the durable hand-over of a new
// message to the router.
//
// Folders (all on one file system, so rename(2) moves files between them):
//   public/     submissions being written (sendmail, rmail, smtpserver, DSNs)
//   router/     complete messages waiting for the router
//   queue/      routed messages (the scheduler's message files)
//   transport/  control files, one per message in queue/
//   deferred/   messages the router could not process now
//   freezer/    messages held by policy, "<id>.<cause>"
//   postman/    damaged or unprocessable files, "<name>.<cause>", kept for
//               the postmaster, never deleted by the node
//   tmp/        the router's half-written control files
//
// public/ and tmp/ are staging folders: their files are created and then
// renamed away, hundreds a second. Each file goes into one of
// kStagingFanout subfolders ("00".."0f", chosen by a hash of its name),
// which the layout asks ext4 to place in different block groups. One
// folder would make every creation wait for that folder's lock, and on an
// ext4 without a journal each creation scans its block group for an inode
// not freed in the last seconds, a scan as long as the group's recent
// deletions; sixteen folders split both sixteen ways.
//
// Submitting (invariant 1 of DESIGN.md):
//
//   zm::spool::Spool spool(node.spool(), node_tag);
//   auto sub = spool.Begin(envelope);   // public/<hh>/<id>, O_EXCL, locked
//   (*sub)->Append(message_bytes);       // as often as needed
//   absl::Status s = (*sub)->Commit();   // fsync, rename, fsync dir
//   // only now may the submitter say "250" or exit 0
//
// A Submission that is destroyed without Commit() removes its file. A
// writer that dies leaves an unlocked file in public/<hh>/;
// RemoveAbandonedTemporaries() takes those away. All functions are
// thread-safe; a Submission belongs to one thread at a time.
#ifndef ZM_SPOOL_SPOOL_H_
#define ZM_SPOOL_SPOOL_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/common/fs.h"
#include "node/mail/envelope.h"

namespace zm::spool {

inline constexpr std::string_view kPublic = "public";
inline constexpr std::string_view kRouter = "router";
inline constexpr std::string_view kQueue = "queue";
inline constexpr std::string_view kTransport = "transport";
inline constexpr std::string_view kDeferred = "deferred";
inline constexpr std::string_view kFreezer = "freezer";
inline constexpr std::string_view kPostman = "postman";
inline constexpr std::string_view kTmp = "tmp";
inline constexpr std::array<std::string_view, 8> kFolders = {
    kPublic, kRouter, kQueue, kTransport, kDeferred, kFreezer, kPostman, kTmp};
inline constexpr std::array<std::string_view, 2> kStagingFolders = {kPublic,
                                                                   kTmp};
inline constexpr int kStagingFanout = 16;

bool IsStagingFolder(std::string_view folder);

class Spool;

// One message being written into public/. Not copyable.
class Submission {
 public:
  ~Submission();
  Submission(const Submission&) = delete;
  Submission& operator=(const Submission&) = delete;

  const std::string& queue_id() const { return queue_id_; }
  // The file being written in public/<hh>/ (a content filter may read it).
  const std::string& path() const { return temp_path_; }
  // Bytes of message appended so far.
  uint64_t size() const { return size_; }

  // Appends message bytes (LF line endings, no dot-stuffing). Buffered.
  absl::Status Append(std::string_view data);

  // Durably hands the message to the router. After OK the file is gone
  // from public/ and the message is in router/ for good; on error nothing
  // is in router/ and the Submission may only be destroyed.
  absl::Status Commit();

  // The two halves of Commit() for callers that share one disk flush among
  // many messages (see GroupCommitter): Prepare() writes the file out and,
  // with `sync`, fsyncs it (without, the caller must make it durable);
  // Publish() renames it into router/. The caller then flushes once for
  // the batch before acknowledging any of them.
  absl::Status Prepare(bool sync = true);
  // After Prepare(/*sync=*/false): puts the file's data on the device
  // (sync_file_range(2)) without flushing the device's cache or the file
  // system's journal. On ext4 with a journal and on XFS, data that is on
  // the device before the rename is committed with the rename, never after
  // it (see GroupCommitter). Start every file of a batch, then await each,
  // so the disk serves them together. AwaitWriteOut() reports a write
  // error.
  void StartWriteOut();
  absl::Status AwaitWriteOut();
  // `folder`/`name` instead: the smtpserver freezes a message with
  // Publish(kFreezer, "<id>.<cause>") (then fsyncs that folder itself).
  absl::Status Publish(std::string_view folder = kRouter,
                       std::string_view name = {});
  // After Prepare(), before Publish(): puts `lines` (whole header lines,
  // each ending in "\n") in front of the message, e.g. the trace and
  // authentication headers of checks that need the complete message. The
  // submission stays prepared (size field updated, not synced).
  absl::Status PrependToMessage(std::string_view lines);

  // Removes the temporary file (also done by the destructor).
  void Abort();

 private:
  friend class Spool;
  Submission(const Spool& spool, std::string queue_id, std::string path,
             fs::UniqueFd fd, size_t size_offset);
  absl::Status FlushBuffer();

  const Spool& spool_;
  std::string queue_id_;
  std::string temp_path_;
  fs::UniqueFd fd_;
  size_t size_offset_;
  uint64_t size_ = 0;
  std::string buffer_;
  bool prepared_ = false;
  bool published_ = false;
};

class Spool {
 public:
  // `postoffice` is the spool folder; `node_tag` goes into queue ids
  // (zm::mail::NodeTag()).
  Spool(std::string postoffice, std::string node_tag);

  const std::string& root() const { return root_; }
  const std::string& node_tag() const { return node_tag_; }
  std::string Path(std::string_view folder) const;
  std::string Path(std::string_view folder, std::string_view name) const;
  // Where file `name` of a staging folder lives: folder/<hh>/name.
  std::string StagingPath(std::string_view folder, std::string_view name) const;
  // The files of a staging folder as "<hh>/<name>" (a Path(folder, entry)
  // names each), plus any file at its top (left by a release that did not
  // hash). Subfolders that cannot be read are skipped.
  absl::StatusOr<std::vector<std::string>> ListStaged(
      std::string_view folder, bool include_hidden = false) const;
  // The files of any folder (ListStaged for a staging folder), names
  // relative to it; hidden ones left out.
  absl::StatusOr<std::vector<std::string>> Files(std::string_view folder) const;

  // Creates every folder that is missing (mode 0750), and the staging
  // folders' subfolders (spread over the disk where the file system can).
  absl::Status CreateLayout() const;

  // Starts a message. Fills in envelope.queue_id (a fresh id) and ignores
  // envelope.size (Commit() fills it). ResourceExhausted if the disk is
  // full.
  absl::StatusOr<std::unique_ptr<Submission>> Begin(
      mail::Envelope envelope) const;

  // fsync(2) of router/, making Publish()ed renames durable.
  absl::Status SyncRouterDir() const;

  // Moves folder/name to postman/<name>.<cause> (durably). Never deletes.
  absl::Status Quarantine(std::string_view folder, std::string_view name,
                          std::string_view cause) const;

  // Removes files in public/ that no live writer holds (their writer died
  // before committing, so nobody was ever told they were accepted) and
  // that are older than `min_age_sec`. Returns the names removed
  // ("<hh>/<id>").
  absl::StatusOr<std::vector<std::string>> RemoveAbandonedTemporaries(
      int min_age_sec = 60) const;

  // Number of files in each folder (a staging folder's subfolders
  // counted as one), in kFolders order.
  std::vector<std::pair<std::string, size_t>> Counts() const;

 private:
  std::string root_;
  std::string node_tag_;
};

}  // namespace zm::spool

#endif  // ZM_SPOOL_SPOOL_H_
