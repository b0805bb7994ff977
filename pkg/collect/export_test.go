package collect

// HoldPrepare makes every collector call f before it judges a completion (nil: nothing).
func HoldPrepare(f func()) {
	if f == nil {
		prepareHook.Store(nil)
		return
	}
	prepareHook.Store(&f)
}
