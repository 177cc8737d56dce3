package fs

import (
	"context"
	"errors"
	"strings"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"

	"github.com/s3mount/s3mount/fs/backend"
)

var _ = (fusefs.NodeRenamer)((*Dir)(nil))

// Rename implements fusefs.NodeRenamer. S3 has no rename: a file is copied (server side) and the
// source deleted; a file still being written moves without a copy (it is uploaded to its new name
// at commit); a directory is renamed object by object, which is not atomic (see SEMANTICS.md).
func (d *Dir) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	defer d.root.op("rename")()
	ctx = detached(ctx)
	r := d.root
	if r.opts.ReadOnly {
		return syscall.EROFS
	}
	if flags&unix.RENAME_EXCHANGE != 0 || flags&^uint32(unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE) != 0 {
		return syscall.EINVAL
	}
	dst, ok := newParent.(*Dir)
	if !ok || !validName(newName) {
		return syscall.EINVAL
	}
	// Both listings are forgotten before and again after the move: the lookups below may list
	// either directory anew, before the objects move, and such a listing would answer for the
	// listing TTL that the new name is absent and the old one present.
	if !keyFits(childKey(dst.key(), newName)) {
		return syscall.ENAMETOOLONG // a directory's longer keys are checked once they are listed
	}
	forget := func() { d.lc.forget(); dst.lc.forget() }
	forget()
	defer forget()
	src, ok, err := d.exists(ctx, name)
	if err == nil && !ok {
		err = syscall.ENOENT
	}
	if err != nil {
		return r.fail("rename", name, err)
	}
	target, targetExists, err := dst.exists(ctx, newName)
	if err != nil {
		return r.fail("rename", newName, err)
	}
	srcKey, dstKey := childKey(d.key(), name), childKey(dst.key(), newName)
	if srcKey == dstKey {
		return 0
	}
	if targetExists && flags&unix.RENAME_NOREPLACE != 0 {
		return syscall.EEXIST
	}
	if src.isDir {
		err = r.renameDir(ctx, d.GetChild(name), srcKey, dstKey, target, targetExists, dst.GetChild(newName))
	} else {
		if targetExists && target.isDir {
			return syscall.EISDIR
		}
		// A replaced file that is still open lives on for its handles, as after unlink: its
		// content is kept here and never committed (it would land over the file moved onto its
		// name). If the move fails, it is the file under that name again.
		replaced := dst.fileChild(newName)
		if replaced != nil {
			if _, err := replaced.detach(ctx); err != nil {
				return r.fail("rename", dstKey, err)
			}
		}
		err = r.renameFile(ctx, d.GetChild(name), srcKey, dstKey)
		if err != nil && replaced != nil {
			replaced.reattach()
		}
	}
	if err != nil {
		return r.fail("rename", srcKey+" -> "+dstKey, err)
	}
	r.forgetMissing(dstKey)
	r.retire(d.GetChild(name))      // the moved node keeps the number of its old key
	r.retire(dst.GetChild(newName)) // a replaced target may live on while open
	return 0
}

// renameFile moves the object srcKey to dstKey. node is the source's node, if the tree has one.
func (r *Root) renameFile(ctx context.Context, node *fusefs.Inode, srcKey, dstKey string) error {
	if node != nil {
		if f, ok := node.Operations().(*File); ok && f.retarget() {
			if f.isLocalOnly() {
				return nil // nothing in S3 yet: the first commit goes to the new name
			}
			// S3 has an older version: move it too, so that the new name keeps it until the commit.
		}
	}
	info, from, err := r.b.Copy(ctx, srcKey, dstKey, retypeOnRename(srcKey, dstKey))
	if err != nil {
		return err
	}
	if node != nil {
		if f, ok := node.Operations().(*File); ok {
			f.movedTo(copied{info, from})
		}
	}
	return r.b.Delete(ctx, srcKey)
}

// copied is the outcome of a server-side copy: the copy's info and the ETag of the version of
// the source it copied.
type copied struct {
	info backend.ObjectInfo
	from string
}

// movedTo records the copy a rename made of the file's object (a copy may have a new ETag), which
// is now the file's committed version, and points the handles reading the version copied at it.
// A handle pinned to another version (S3 had a newer one than it opened) keeps reading that
// version's bytes from memory, and gets ESTALE for the rest.
func (f *File) movedTo(c copied) {
	f.mu.Lock()
	f.adopt(c.info)
	readers := make([]*reader, 0, len(f.readers))
	for rd := range f.readers {
		if rd.version() == c.from {
			readers = append(readers, rd)
		}
	}
	f.mu.Unlock()
	for _, rd := range readers {
		rd.moved(c.info.Key, c.info.ETag)
	}
}

// movedTree updates the nodes below node, a directory just renamed, to their objects' copies
// (copies, by key relative to the directory; rel is node's own relative path): files move to
// their copies (see movedTo), and directories forget their listings, whose entries name the old
// versions.
func movedTree(node *fusefs.Inode, rel string, copies map[string]copied) {
	if d, ok := node.Operations().(*Dir); ok {
		d.lc.forget()
	}
	for name, ch := range node.Children() {
		switch n := ch.Operations().(type) {
		case *File:
			if c, ok := copies[rel+name]; ok {
				n.movedTo(c)
			}
		case *Dir:
			movedTree(ch, rel+name+"/", copies)
		}
	}
}

// retarget prepares a file with uncommitted content to be committed under its new name (the tree
// renames the node once Rename returns): a multipart upload to the old name is abandoned and its
// parts will be uploaded again. It reports false when the file has nothing uncommitted.
func (f *File) retarget() bool {
	f.mu.Lock()
	d := f.dirty
	f.mu.Unlock()
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.waitIdle()
	if !d.dirty || !d.loaded || d.punchedBytes() > 0 {
		return false
	}
	d.waitInflight()
	d.abortUpload()
	return true
}

// renameDir moves every object under srcKey/ to dstKey/, after committing the files below it that
// have local changes. target describes what exists at dstKey (if targetExists), targetNode its node.
func (r *Root) renameDir(ctx context.Context, node *fusefs.Inode, srcKey, dstKey string, target dirEntry, targetExists bool, targetNode *fusefs.Inode) error {
	srcPrefix, dstPrefix := dirPrefix(srcKey), dirPrefix(dstKey)
	if strings.HasPrefix(dstPrefix, srcPrefix) {
		return syscall.EINVAL // into itself
	}
	if targetExists {
		if !target.isDir {
			return syscall.ENOTDIR
		}
		if err := r.checkEmpty(ctx, targetNode, dstPrefix); err != nil {
			return err
		}
	}
	if !keyFits(dstPrefix) {
		return syscall.ENAMETOOLONG
	}
	if node != nil {
		if err := r.commitTree(ctx, node); err != nil {
			return err
		}
	}
	var keys []string
	token := ""
	for {
		p, err := r.b.List(ctx, backend.ListInput{Prefix: srcPrefix, Token: token})
		if err != nil {
			return err
		}
		for _, o := range p.Objects {
			keys = append(keys, o.Key)
		}
		if token = p.NextToken; token == "" {
			break
		}
	}
	for _, k := range append(keys, srcPrefix) {
		if !keyFits(dstPrefix + strings.TrimPrefix(k, srcPrefix)) {
			return syscall.ENAMETOOLONG // before anything is copied
		}
	}
	if len(keys) == 0 || keys[0] != srcPrefix {
		// No marker: write one, so that the renamed directory exists even while empty.
		keys = append([]string{srcPrefix}, keys...)
		if _, err := r.b.Put(ctx, srcPrefix, strings.NewReader(""), 0, backend.PutOptions{}); err != nil {
			return err
		}
	}
	// Copy everything first, then delete: a crash in between leaves both trees, never neither.
	copies := make(map[string]copied, len(keys))
	for _, k := range keys {
		rel := strings.TrimPrefix(k, srcPrefix)
		info, from, err := r.b.Copy(ctx, k, dstPrefix+rel, nil)
		if err != nil {
			return err
		}
		copies[rel] = copied{info, from}
	}
	if node != nil {
		movedTree(node, "", copies)
	}
	for _, k := range keys {
		if err := r.b.Delete(ctx, k); err != nil && !errors.Is(err, backend.ErrNotExist) {
			return err
		}
	}
	return nil
}

// commitTree commits every file with local changes below node.
func (r *Root) commitTree(ctx context.Context, node *fusefs.Inode) error {
	for _, ch := range node.Children() {
		switch n := ch.Operations().(type) {
		case *File:
			if err := n.commit(ctx); err != nil {
				return err
			}
		case *Dir:
			if err := r.commitTree(ctx, ch); err != nil {
				return err
			}
		}
	}
	return nil
}
